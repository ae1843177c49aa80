"""Write the example customer base and acquisition plan used by company.toml.

base.csv: the customers active now of a company that acquired 120 customers a
month for four years, at the expected sBG survival of company.toml's mean
parameters (alpha = 0.9, beta = 12 per monthly renewal), rounded; current MRR
is the starting 500 grown 4% a year. plan.csv: 130 new customers a month for
the next two years. Run from this directory: python make_inputs.py
"""

import numpy as np
from scipy.special import betaln

ALPHA, BETA, PER_MONTH, YEARS = 0.9, 12.0, 120, 4

with open("base.csv", "w") as out:
    out.write("tenure_months,customers,mrr_per_customer\n")
    for n in range(12 * YEARS):
        survival = np.exp(betaln(ALPHA, BETA + n) - betaln(ALPHA, BETA))
        out.write(f"{n},{round(PER_MONTH * survival)},{500 * 1.04 ** (n / 12):.2f}\n")

with open("plan.csv", "w") as out:
    out.write("month,new_customers\n")
    for m in range(24):
        out.write(f"{m},130\n")
