"""Where interactions come from: the demo data, the user's files, a landing folder of daily drops,
MovieLens, and a generator of synthetic logs at scale."""
