"""A real SFTP server for the publish tests (asyncssh), run as its own process:

    python tests/sftp_server.py --root DIR --port N --host-key FILE --authorized-keys FILE [--drop-after BYTES]

--drop-after: the first connection is cut (the TCP connection aborted, as a network failure would)
once this many bytes have been written in it; later connections are served whole."""

from __future__ import annotations

import argparse
import asyncio

import asyncssh


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host-key", required=True)
    parser.add_argument("--authorized-keys", required=True)
    parser.add_argument("--drop-after", type=int)
    args = parser.parse_args()
    budget = {"left": args.drop_after}

    class Server(asyncssh.SFTPServer):
        def __init__(self, chan):
            super().__init__(chan, chroot=args.root.encode())

        def write(self, file_obj, offset, data):
            left = budget["left"]
            if left is not None and len(data) > left:
                budget["left"] = None  # only the first connection is cut
                file_obj.seek(offset)
                file_obj.write(data[:left])
                file_obj.flush()
                self.connection.abort()
                raise asyncssh.SFTPError(asyncssh.FX_CONNECTION_LOST, "connection dropped by the test server")
            if left is not None:
                budget["left"] = left - len(data)
            return super().write(file_obj, offset, data)

    async def serve():
        await asyncssh.listen("127.0.0.1", args.port, server_host_keys=[args.host_key],
                              authorized_client_keys=args.authorized_keys, sftp_factory=Server,
                              allow_scp=False)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
