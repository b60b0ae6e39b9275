"""Deep convolutional ranking for multilabel annotation (Gong et al.): task ``multilabel_annotation``.

Results and launch commands: ``README.md`` in this folder.
"""
