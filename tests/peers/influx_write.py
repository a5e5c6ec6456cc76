"""Writes with the official InfluxDB 2.x Python client (influxdb-client), unchanged, to a
Millwright URL: `influx_write.py URL TOKEN N`.

Writes N points of measurement `weather`, tag `station=site-a`, fields temperature (float),
ok (bool), samples (int), one per second from 2026-01-01T00:00:00Z, synchronously; then sends
one malformed record and prints how it was refused ("refused: STATUS MESSAGE").
"""

import sys
from datetime import datetime, timedelta, timezone

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException


def main() -> int:
    url, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with InfluxDBClient(url=url, token=token, org="plant", timeout=10_000) as client:
        api = client.write_api(write_options=SYNCHRONOUS)
        points = [
            Point("weather")
            .tag("station", "site-a")
            .field("temperature", 20.0 + i * 0.25)
            .field("ok", i % 2 == 0)
            .field("samples", i)
            .time(t0 + timedelta(seconds=i), WritePrecision.S)
            for i in range(n)
        ]
        # two requests, as a client batching its writes would send them
        half = n // 2
        api.write(bucket="edge", record=points[:half], write_precision=WritePrecision.S)
        api.write(bucket="edge", record=points[half:], write_precision=WritePrecision.S)
        print(f"wrote {n} points")
        try:
            api.write(bucket="edge", record="weather,station=site-a temperature=", write_precision=WritePrecision.S)
            print("malformed record accepted")
        except ApiException as e:
            print(f"refused: {e.status} {e.body}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
