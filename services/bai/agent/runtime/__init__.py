"""Container runtimes behind one interface (`KernelRuntime`): Docker and a
bubblewrap process sandbox. The agent's kernel logic never imports a
runtime module directly; `select_runtime` picks one from config."""
