"""Tries to reach the host: a TCP connection to a loopback port the host listens on; lists interfaces."""

import socket

from common import cases, extra, write_valid_predictions

port = extra("probe_port")
print("interfaces:", sorted(name for _, name in socket.if_nameindex()), flush=True)
try:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as connection:
        connection.sendall(b"escaped")
        print("network: CONNECTED to the host", flush=True)
except OSError as error:
    print(f"network: blocked ({type(error).__name__}: {error})", flush=True)
write_valid_predictions(c["case_id"] for c in cases())
