"""Data transforms the stages share: splits, user shards, the as-of filter, model inputs,
the item catalog, explanations, and the ordered thread map their block-wise work runs in."""
