"""IDE RankNet image-difficulty experiment: trains a variant, then reports it on the test split.

  python -m experiments.image_difficulty --config=configs/image_difficulty.py:<variant>[,voc][,paper] --workdir=DIR

Variants: ``mse``, ``kendall``, ``weighted``, ``alternating`` (Table 2), ``mobilenet``, ``vgg16``,
``resnet101``, ``resnet152`` (Table 1), ``lambda=<value>`` (Figure 3); see ``configs/image_difficulty.py``.
Runs ``ranking_jax.projects.ide_ranknet.image_difficulty`` through the shared trainer: checkpoints, ``metrics.jsonl``
(``validation`` every few epochs), and at the end the ``test`` evaluation, ``results.json`` (with the
report under ``"report"``), ``results.md`` (test MSE and Kendall tau_a beside the paper's figure) and
``figure4.png`` (predicted vs. true with the least-squares line), and from the checkpoint the authors' rule
selects (``config.selection``: best validation tau under an MSE cap) its test figures in ``results.json``
(``"selected"``) and ``results.md`` and ``figure4_selected.png``. Relaunching resumes.
"""

from experiments import main_lib

if __name__ == "__main__":
  main_lib.run("ranking_jax.projects.ide_ranknet.image_difficulty")
