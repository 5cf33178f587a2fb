"""Long-output training data the LongWriter-6k way: AgentWrite documents for a file of
instructions, filtered as the paper filtered, kept in LongWriter-6k's layout, described and
exported for the usual fine-tuning tools."""
