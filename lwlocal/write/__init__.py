"""Plan-then-write (AgentWrite) and single-pass long generation."""
