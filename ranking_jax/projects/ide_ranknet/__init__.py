"""IDE RankNet (image difficulty estimation with the Kendall rank loss): task ``image_difficulty``.

Results and launch commands: ``README.md`` in this folder.
"""
