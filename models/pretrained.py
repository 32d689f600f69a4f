"""Loading a spiking student from its folder: config.json, then the weights, strictly."""
import logging
import os

import torch

from models.config import SpikingBertConfig
from transformer.checkpoint import CONFIG_NAME, load_weights, weight_shapes, weights_file
from transformer.modeling import BertConfig, check_fit, load_pretrained_state, match_state

logger = logging.getLogger(__name__)

# What to do when a student's weights do not fit its config.
STUDENT_HINT = "fix config.json, or pass --fresh_student to start from random weights"


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
    the model keeps its random initialisation. Otherwise the weights must fit the config
    (transformer.modeling.check_fit): every tensor of the model in the file with its shape,
    except those ``model.fresh_weights_allowed`` names (a new task's classifier, fit_dense
    for a teacher of another width, thresholds the config newly gives each population), and
    no tensor of the backbone that the model has no place for (the layers of a deeper
    student); else a one-line ValueError naming the file and the first offending tensors.
    The loading report is ``model.loading_info``.
    """
    model = cls.build(student_config(model_dir, flags, **overrides))
    path = weights_file(model_dir)
    if path is None or fresh_weights:
        logger.info("%s: %s; student initialised randomly", model_dir,
                    "no weights file" if path is None else "fresh weights asked for")
        return model
    state_dict = load_weights(model_dir)
    check_fit(model, match_state(model, {key: value.shape for key, value in state_dict.items()}), path,
              model.fresh_weights_allowed, STUDENT_HINT)
    model.loading_info = load_pretrained_state(model, state_dict, source=model_dir)
    model.after_loading(model_dir, model.loading_info)
    return model


def check_student_weights(cls, model_dir, flags=None, **overrides):
    """load_student's check of the weights from the config and the weights file's header alone (the model is
    built on the meta device, without memory): before anything is loaded or written."""
    path = weights_file(model_dir)
    if path is None:
        return
    with torch.device("meta"):
        model = cls.build(student_config(model_dir, flags, **overrides))
    check_fit(model, match_state(model, weight_shapes(model_dir)), path, model.fresh_weights_allowed, STUDENT_HINT)
