"""Analysis programs: parameter/FLOPs counters and the model zoo table, training-log parsing and
plots, speed benchmarks. Above the engine: nothing in the engine, data or modeling imports them."""
