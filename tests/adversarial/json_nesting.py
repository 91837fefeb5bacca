"""A Grand Challenge container whose probability JSON is '[' nested 5,000 deep: Python's JSON
decoder raises RecursionError, not ValueError, and the harness crashed instead of recording it."""

with open("/output/covid-probability.json", "w") as handle:
    handle.write("[" * 5000 + "]" * 5000)
print("wrote deep JSON", flush=True)
