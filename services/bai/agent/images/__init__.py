"""Kernel images: the `ai.backend.*` labels that describe what an image offers
(`labels.py`, pure) and the builder of the local Python kernel image
(`build.py`, `bai agent build-image`)."""
