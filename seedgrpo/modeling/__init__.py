"""The model forwards shared by rollout and training: access to (possibly ZeRO-3-sharded) weights, the no-grad
scoring forward (old/reference log-probs, shared prompt prefixes) and the training forward that feeds the loss."""
