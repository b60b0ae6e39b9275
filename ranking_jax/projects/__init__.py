"""One package per paper: its experiment task(s), private data and models, and a README with its results.

Core modules (``losses``, ``ranks``, ``metrics``, ``sorters``, ``train``, shared ``data`` and ``models``)
never import a project; a project's models and datasets register themselves by name when the project
package is imported (its task imports it).

* :mod:`~ranking_jax.projects.ide_ranknet` — IDE RankNet, image difficulty (``image_difficulty``).
* :mod:`~ranking_jax.projects.class_rectification` — Class Rectification Loss (``class_rectification``).
* :mod:`~ranking_jax.projects.sodeep` — SoDeep losses (``sodeep_synthetic_ap``, ``sodeep_spearman``,
  ``sodeep_map``, ``sodeep_recall``); the sorters themselves are core (:mod:`ranking_jax.sorters`).
* :mod:`~ranking_jax.projects.multilabel_annotation` — Gong et al. multilabel annotation.
* :mod:`~ranking_jax.projects.sketch_retrieval` — Song et al. fine-grained sketch-based retrieval.
"""
