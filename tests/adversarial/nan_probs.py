"""NaN probabilities for the first case, infinity for the second, valid rows for the rest."""

from common import cases, write_predictions

ids = [c["case_id"] for c in cases()]
rows = {case_id: ("0.5", "0.5") for case_id in ids}
rows[ids[0]] = ("nan", "nan")
rows[ids[1]] = ("inf", "0.5")
write_predictions(rows)
