"""TSBS-iot-like line-protocol load for bench/historian-vs-victoriametrics.sh.

    lp_gen.py TRUCKS POINTS STEP_S END_UNIX_S LINES_PER_BODY OUT_DIR

TRUCKS trucks, each a line per reading with seven fields (latitude, longitude, elevation,
velocity, heading, grade, fuel_consumption), so 7 series per truck; POINTS readings per truck,
STEP_S apart, ending at END. Values are clamped random walks printed to the digits a truck
reports (latitude/longitude 5, velocity/grade/fuel 1, elevation/heading 0); about 0.5 % of the
readings are missed, and each truck has a 10-minute outage about once every 28 hours of
readings. Deterministic (seed 42), so both stores get the same bytes. A line
`readings,fleet=f0,truck=truck_00001 latitude=…,… TS_NS` is the Millwright tags
`readings/f0/truck_00001/<field>` and the VictoriaMetrics series
`readings_<field>{fleet="f0",truck="…"}`; a fleet is 143 trucks (1001 series), what query (b)
of the benchmark averages.
Written time-major (every truck at t, then t + step), as a fleet reports, in bodies of at most
LINES lines. Prints: bodies lines points.
"""
import os
import random
import sys

trucks, points, step, end, per_body, out = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                                            int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
rng = random.Random(42)
start = end - points * step
# field: (lo, hi, step sigma, digits)
FIELDS = [("latitude", -90.0, 90.0, 0.001, 5), ("longitude", -180.0, 180.0, 0.001, 5),
          ("elevation", 0.0, 5000.0, 3.0, 0), ("velocity", 0.0, 100.0, 1.5, 1),
          ("heading", 0.0, 359.0, 4.0, 0), ("grade", 0.0, 100.0, 1.0, 1),
          ("fuel_consumption", 0.0, 50.0, 0.4, 1)]
state = [[rng.uniform(lo, hi) for (_, lo, hi, _, _) in FIELDS] for _ in range(trucks)]
outage_every = max(1, (28 * 3600) // step)
outage_len = max(1, 600 // step)
outage_at = [rng.randrange(outage_every) for _ in range(trucks)]
names = [f"readings,fleet=f{t // 143},truck=truck_{t:05d} " for t in range(trucks)]
body, lines, n, buf = 0, 0, 0, []


def flush():
    global body, buf
    if buf:
        with open(os.path.join(out, f"body{body:05d}.lp"), "w") as f:
            f.write("".join(buf))
        body += 1
        buf = []


for i in range(points):
    ts = (start + i * step) * 1_000_000_000
    for t in range(trucks):
        s = state[t]
        for k, (_, lo, hi, sigma, _) in enumerate(FIELDS):
            s[k] = min(hi, max(lo, s[k] + rng.gauss(0, sigma)))
        if (i - outage_at[t]) % outage_every < outage_len or rng.random() < 0.005:
            continue
        fields = ",".join(f"{name}={s[k]:.{d}f}" for k, (name, _, _, _, d) in enumerate(FIELDS))
        buf.append(f"{names[t]}{fields} {ts}\n")
        lines += 1
        n += len(FIELDS)
        if len(buf) >= per_body:
            flush()
flush()
print(body, lines, n)
