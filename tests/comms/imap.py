"""A small IMAP4rev1 server on loopback (asyncio, in a thread) for the bounce mailbox tests.

It speaks as much of RFC 3501 as imaplib needs to read a mailbox: CAPABILITY, LOGIN,
AUTHENTICATE XOAUTH2 (Microsoft's and Google's SASL format, the token checked by the test), SELECT,
UID SEARCH UNSEEN, UID FETCH (RFC822.SIZE / RFC822 / BODY.PEEK[]), UID STORE +FLAGS, NOOP and
LOGOUT, over plain TCP (loopback only). It keeps each message's flags so a test can see which
were marked read.
"""

from __future__ import annotations

import asyncio
import base64
import re
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self

from tests.comms.smtp import HOST, free_port

# An IMAP argument: a quoted string (backslash escapes) or an atom.
_ARGUMENT = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')


def arguments(text: str) -> list[str]:
    return [
        re.sub(r"\\(.)", r"\1", quoted) if quoted or atom == "" else atom
        for quoted, atom in _ARGUMENT.findall(text)
    ]


class ImapMailbox:
    def __init__(
        self,
        username: str,
        password: str,
        *,
        accept_token: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.username = username
        self.password = password
        # XOAUTH2: whether a bearer token lets ``username`` in (the provider stand-in knows).
        self.accept_token = accept_token
        self.port = free_port()
        self._messages: dict[int, tuple[bytes, set[str]]] = {}
        self._next_uid = 1
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self.logins = 0

    # The mailbox ---------------------------------------------------------------------------

    def add(self, raw: bytes) -> int:
        with self._lock:
            uid = self._next_uid
            self._next_uid += 1
            self._messages[uid] = (raw, set())
            return uid

    def seen(self, uid: int) -> bool:
        with self._lock:
            return "\\Seen" in self._messages[uid][1]

    # The protocol --------------------------------------------------------------------------

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK [CAPABILITY IMAP4rev1] loopback IMAP ready\r\n")
        logged_in = selected = False
        try:
            while line := await reader.readline():
                tag, _, rest = line.decode("utf-8", "replace").rstrip("\r\n").partition(" ")
                words = rest.split(" ")
                command = words[0].upper()
                if command == "CAPABILITY":
                    writer.write(b"* CAPABILITY IMAP4rev1\r\n")
                    reply = "OK CAPABILITY completed"
                elif command == "NOOP":
                    reply = "OK NOOP completed"
                elif command == "LOGOUT":
                    writer.write(b"* BYE logging out\r\n")
                    writer.write(f"{tag} OK LOGOUT completed\r\n".encode())
                    await writer.drain()
                    break
                elif command == "LOGIN":
                    user, password = arguments(rest.partition(" ")[2])[:2]
                    logged_in = (user, password) == (self.username, self.password)
                    self.logins += logged_in
                    reply = "OK LOGIN completed" if logged_in else "NO [AUTHENTICATIONFAILED] no"
                elif command == "AUTHENTICATE" and words[1:2] == ["XOAUTH2"]:
                    writer.write(b"+ \r\n")
                    await writer.drain()
                    answer = base64.b64decode(await reader.readline()).decode("utf-8", "replace")
                    fields = dict(
                        part.split("=", 1) for part in answer.split("\x01") if "=" in part
                    )
                    token = fields.get("auth", "").removeprefix("Bearer ")
                    logged_in = (
                        self.accept_token is not None
                        and fields.get("user") == self.username
                        and self.accept_token(self.username, token)
                    )
                    self.logins += logged_in
                    reply = (
                        "OK AUTHENTICATE completed"
                        if logged_in
                        else "NO [AUTHENTICATIONFAILED] invalid token"
                    )
                elif not logged_in:
                    reply = "BAD log in first"
                elif command == "SELECT":
                    selected = True
                    with self._lock:
                        count = len(self._messages)
                    writer.write(f"* {count} EXISTS\r\n* 0 RECENT\r\n".encode())
                    writer.write(b"* OK [UIDVALIDITY 1] UIDs valid\r\n")
                    reply = "OK [READ-WRITE] SELECT completed"
                elif not selected or command != "UID" or len(words) < 3:
                    reply = "BAD not understood here"
                else:
                    reply = self._uid(writer, words[1].upper(), words[2:])
                writer.write(f"{tag} {reply}\r\n".encode())
                await writer.drain()
        finally:
            writer.close()

    def _uid(self, writer: asyncio.StreamWriter, verb: str, args: list[str]) -> str:
        with self._lock:
            uids = sorted(self._messages)
            if verb == "SEARCH":
                unseen = [u for u in uids if "\\Seen" not in self._messages[u][1]]
                writer.write(("* SEARCH " + " ".join(map(str, unseen))).rstrip().encode() + b"\r\n")
                return "OK SEARCH completed"
            uid = int(args[0])
            if uid not in self._messages:
                return f"OK UID {verb} completed"
            raw, flags = self._messages[uid]
            number = uids.index(uid) + 1
            what = " ".join(args[1:]).upper()
            if verb == "FETCH" and "RFC822.SIZE" in what:
                writer.write(f"* {number} FETCH (UID {uid} RFC822.SIZE {len(raw)})\r\n".encode())
            elif verb == "FETCH" and ("BODY.PEEK[]" in what or "RFC822" in what):
                name = "RFC822" if "RFC822" in what else "BODY[]"
                if name == "RFC822":
                    flags.add("\\Seen")  # RFC 3501: fetching RFC822 marks the message read
                head = f"* {number} FETCH (UID {uid} {name} {{{len(raw)}}}\r\n".encode()
                writer.write(head + raw + b")\r\n")
            elif verb == "STORE" and args[1:2] == ["+FLAGS"]:
                flags.update(f.strip("()") for f in args[2:])
                listed = " ".join(sorted(flags))
                writer.write(f"* {number} FETCH (UID {uid} FLAGS ({listed}))\r\n".encode())
            else:
                return "BAD not understood here"
            return f"OK UID {verb} completed"

    # Running -------------------------------------------------------------------------------

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(
                asyncio.start_server(self._session, HOST, self.port)
            )
            ready.set()
            loop.run_forever()
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=run, name="loopback-imap", daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
