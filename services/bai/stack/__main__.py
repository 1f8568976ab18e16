from bai.stack.cli import main

raise SystemExit(main(prog="python -m bai.stack"))
