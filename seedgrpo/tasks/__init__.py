"""Tasks and data: problem files and prompt templates (`data`), the locally built toy model, tokenizer and
arithmetic task (`toy`), and the short-answer QA task (`qa`)."""
