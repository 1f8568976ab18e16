"""The in-kernel runner: a stdlib-only script that is each sandbox's main process
(`kernel_runner.py`), the frame protocol it speaks over a unix socket
(`protocol.py`), where things live inside the sandbox (`layout.py`) and the
agent's asyncio client (`client.py`).

`kernel_runner.py`, `protocol.py` and `layout.py` run inside kernel images on
python3 >= 3.9 with no third-party packages; the agent bind-mounts this
directory read-only at `layout.RUNNER_MOUNT`.
"""
