"""How much a streaming client has left unread, as the connection's TCP state tells (Linux)."""

from __future__ import annotations

import asyncio
import socket

TCP_INFO_SND_WND = 228  # offsets in Linux's struct tcp_info: the peer's advertised window
TCP_INFO_NOTSENT = 144  # ... and the bytes not sent yet
BACKLOG_LIMIT = 64 << 10  # bytes a streaming client may leave unread before its clock runs
BACKLOG_POLLS = 10  # looks at the connection per stall_seconds


class ClientBacklog:
    """What a streaming client has been sent and not read, as TCP sees it (Linux): how far the
    receive window it advertises has shrunk from the widest it has been, plus what waits to
    be sent. A client that reads keeps its window open; one that does not shrinks it by every
    byte sent, however large its receive buffer (on loopback it grows to megabytes, which
    would otherwise take minutes of generation to fill before a send waited)."""

    def __init__(self, sock: socket.socket | None) -> None:
        self.sock, self.widest = sock, 0

    def unread(self) -> int | None:
        """Bytes sent and not read, or None where TCP does not tell."""
        if self.sock is None or not hasattr(socket, "TCP_INFO"):
            return None
        try:
            info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO,
                                        TCP_INFO_SND_WND + 4)
        except OSError:
            return None
        if len(info) < TCP_INFO_SND_WND + 4:  # a kernel older than 5.4
            return None
        window = int.from_bytes(info[TCP_INFO_SND_WND:TCP_INFO_SND_WND + 4], "little")
        pending = int.from_bytes(info[TCP_INFO_NOTSENT:TCP_INFO_NOTSENT + 4], "little")
        self.widest = max(self.widest, window)
        return self.widest - window + pending

    async def stalled(self, seconds: float) -> None:
        """Return once the client has left over ``BACKLOG_LIMIT`` bytes unread, reading none
        of them, for ``seconds``; never where TCP does not tell."""
        loop = asyncio.get_running_loop()
        since: float | None = None
        before = self.unread()
        if before is None:
            await asyncio.Event().wait()
        while True:
            await asyncio.sleep(seconds / BACKLOG_POLLS)
            now = self.unread()
            if now is None or before is None or now < before or now < BACKLOG_LIMIT:
                since = None  # it read something, or has little left to read
            else:
                since = since or loop.time()
            if since is not None and loop.time() - since >= seconds:
                return
            before = now
