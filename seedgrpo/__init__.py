"""seedgrpo: SEED-GRPO and GCPO-style training for reasoning LLMs."""
