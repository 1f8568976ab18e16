"""The node agent: runs kernels in containers (implementation lands with the sessions issue)."""
