"""Loading a spiking student from its folder: config.json, then the weights, strictly."""
import logging
import os

from models.config import SpikingBertConfig
from transformer.checkpoint import CONFIG_NAME, load_weights, weights_file
from transformer.modeling import BertConfig, load_pretrained_state

logger = logging.getLogger(__name__)

def student_config(model_dir, flags=None, **overrides):
    """The SpikingBertConfig of ``model_dir``/config.json with ``flags`` (settings given on the command
    line, e.g. {"t_conv": 8}) and ``overrides`` (None = not given) applied.

    A bad value read from the file, or in ``overrides``, is blamed on the file; a bad flag value
    on its flag (``--t_conv``).
    """
    path = os.path.join(model_dir, CONFIG_NAME)
    config = SpikingBertConfig.from_bert_config(BertConfig.from_pretrained(model_dir), source=path)
    flags = flags or {}
    return config.with_overrides(source=path, blame={key: f"--{key}" for key in flags}, **overrides, **flags)


def load_student(cls, model_dir, flags=None, fresh_weights=False, **overrides):
    """Student of class ``cls`` from ``model_dir``: config.json with ``flags`` and ``overrides``
    (see student_config), then its weights.

    Without a weights file, or with ``fresh_weights`` (the user asked for a fresh start),
    the model keeps its random initialisation. Otherwise every tensor of the model must be
    in the file with its shape, except those ``model.fresh_weights_allowed`` names (a new
    task's classifier, fit_dense for a teacher of another width, thresholds the config
    newly gives each population): anything else raises a one-line ValueError naming the
    file and the first offending tensors. The loading report is ``model.loading_info``.
    """
    model = cls.build(student_config(model_dir, flags, **overrides))
    path = weights_file(model_dir)
    if path is None or fresh_weights:
        logger.info("%s: %s; student initialised randomly", model_dir,
                    "no weights file" if path is None else "fresh weights asked for")
        return model
    model.loading_info = load_pretrained_state(model, load_weights(model_dir), source=model_dir)
    check_loaded(model, path)
    model.after_loading(model_dir, model.loading_info)
    return model


def check_loaded(model, path):
    """Raise when tensors the model needs were missing from ``path`` or had another shape."""
    info = model.loading_info
    absent = [key for key in info["missing_keys"] if not model.fresh_weights_allowed(key)]
    reshaped = [key for key in info["mismatched_keys"] if not model.fresh_weights_allowed(key)]
    if not absent and not reshaped:
        return
    own = model.state_dict()
    problems = [f"{key} missing" for key in absent[:3]] + [
        f"{key} {tuple(info['file_shapes'][key])} in the file, {tuple(own[key].shape)} in the model"
        for key in reshaped[:3]]
    raise ValueError(f"{path}: {len(absent) + len(reshaped)} tensors do not fit the config "
                     f"({'; '.join(problems)}); fix config.json, or pass --fresh_student to start from "
                     "random weights")
