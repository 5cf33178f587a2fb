"""Memory plans: the machine, the planner, its output formats and its measurements."""
