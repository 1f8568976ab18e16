"""Session lifecycle: naming, state machine, events, scheduling rounds and agent dispatch."""
