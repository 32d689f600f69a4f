"""Pictures of where a spiking student's spikes are, for single sentences (predict.py --plot_spikes).

Each figure shows one sentence: on top a heatmap of the spike rate of every token (x, labelled with
its WordPiece) in every neuron population (y, in firing order, lines between layers), after the
steps the sentence ran; below, the rate of every population at the [CLS] position after each step
(the running spike count / steps), with the adaptive stopping step marked when there is one.
matplotlib is imported only here.
"""

import torch

from transformer.file_utils import write_atomically


POPULATION_COLOURS = {"embedding": "black", "key": "tab:blue", "value": "tab:orange", "attention": "tab:green",
                      "self_output": "tab:red", "intermediate": "tab:purple", "output": "tab:brown"}


@torch.no_grad()
def spike_trace(model, feature, steps_used):
    """(per-token rates [P, L] after ``steps_used`` steps, [CLS] rates [T, P] after each of the model's t_conv
    steps) of one sentence simulated alone; rates of spikes of either sign."""
    length = feature.seq_length
    ids, segments = (torch.tensor([getattr(feature, name)[:length]]) for name in ("input_ids", "segment_ids"))
    simulation = model.start_simulation(ids, segments, torch.ones_like(ids))
    cls_rates, token_rates = [], None
    for step in range(1, model.config.spiking.t_conv + 1):
        counts = simulation.run(1).event_counts().flat()
        cls_rates.append([count[0, 0].float().mean().item() / step for count in counts])
        if step == steps_used:
            token_rates = torch.stack([count[0].float().mean(-1) / step for count in counts])
    return token_rates, torch.tensor(cls_rates)


def plot_sentence(path, tokens, population_names, token_rates, cls_rates, steps_used, stopped_early, title):
    """One sentence's figure (module docstring) as a PNG at ``path``."""
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figure, (heatmap_axis, steps_axis) = plt.subplots(
        2, 1, figsize=(max(6.0, 0.35 * len(tokens) + 2.5), 3.0 + 0.12 * len(population_names)),
        gridspec_kw={"height_ratios": [max(2.0, 0.12 * len(population_names)), 1.6]})
    # The colour scale ends at the highest rate drawn: rates are mostly far below 1.
    image = heatmap_axis.imshow(token_rates.numpy(), aspect="auto", cmap="viridis", vmin=0,
                                vmax=max(float(token_rates.max()), 1e-6), interpolation="nearest")
    heatmap_axis.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
    heatmap_axis.set_yticks(range(len(population_names)), population_names, fontsize=5)
    for boundary in range(1, len(population_names), 6):  # embedding, then six populations per layer
        heatmap_axis.axhline(boundary - 0.5, color="white", linewidth=0.8)
    figure.colorbar(image, ax=heatmap_axis, label="spike rate")
    heatmap_axis.set_title(f"{title}\nspike rate per token after {steps_used} steps", fontsize=8)
    steps = range(1, len(cls_rates) + 1)
    for index, name in enumerate(population_names):
        kind = name.split(".")[-1]
        steps_axis.plot(steps, cls_rates[:, index].numpy(), color=POPULATION_COLOURS.get(kind, "grey"),
                        linewidth=0.8, alpha=0.7, label=kind if index < 7 else None)
    if stopped_early:
        steps_axis.axvline(steps_used, color="black", linestyle="--", label=f"adaptive stop ({steps_used} steps)")
    steps_axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    steps_axis.set_xlabel("time step")
    steps_axis.set_ylabel("[CLS] spike rate")
    steps_axis.set_ylim(0, 1)
    steps_axis.legend(fontsize=6, ncol=4)
    figure.tight_layout()
    write_atomically(path, lambda f: figure.savefig(f, format="png", dpi=110), "wb")
    plt.close(figure)
