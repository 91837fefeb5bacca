"""Valid rows for every case, then two million rows for case ids that were never given."""

from common import OUTPUT, cases, write_valid_predictions

write_valid_predictions([case["case_id"] for case in cases()])
with open(OUTPUT / "predictions.csv", "a") as handle:
    for start in range(0, 2_000_000, 100_000):
        handle.write("".join(f"ghost-{i},0.5,0.5\n" for i in range(start, start + 100_000)))
print("unknown-ids: written", flush=True)
