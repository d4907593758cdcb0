"""smtp-sink: a real SMTP server (aiosmtpd) that keeps each message it accepts, for tttd's tests.

See scripts/smtp-sink --help. Messages go to --maildir as NNNN.eml (the DATA bytes, after the
server removed the dot-stuffing) and NNNN.json (what Python's email package reads in them).
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import ssl
import subprocess
import sys
import threading

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def parse_args():
    p = argparse.ArgumentParser(prog="smtp-sink")
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--maildir", required=True)
    p.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    p.add_argument("--cert-dir")
    p.add_argument("--auth-user")
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--fail-code", type=int, default=451)
    p.add_argument("--fail-at", choices=["mail", "rcpt", "data"], default="data")
    p.add_argument("--reject-rcpt", action="append", default=[])
    p.add_argument("--exit-on-stdin-eof", action="store_true")
    p.add_argument("--setup-only", action="store_true")  # handled by the shell wrapper
    return p.parse_args()


def say(line):
    print(line, flush=True)


def make_certificate(directory):
    """A self-signed certificate for 127.0.0.1 and localhost, made once per directory."""
    os.makedirs(directory, exist_ok=True)
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    if not (os.path.exists(cert) and os.path.exists(key)):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key + ".tmp",
             "-out", cert + ".tmp", "-days", "30", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.replace(key + ".tmp", key)
        os.replace(cert + ".tmp", cert)
    return cert, key


def reply_text(code):
    return {421: "4.3.2 service not available, closing channel (sink)",
            450: "4.2.0 mailbox unavailable (sink)",
            451: "4.3.0 local error in processing, try again later (sink)",
            452: "4.3.1 insufficient system storage (sink)",
            550: "5.7.1 message refused (sink)",
            552: "5.3.4 message too big (sink)",
            554: "5.6.0 transaction failed (sink)"}.get(code, "refused (sink)")


class Sink:
    def __init__(self, args):
        self.args = args
        self.attempts = 0
        self.accepted = 0
        os.makedirs(args.maildir, exist_ok=True)

    def failing(self):
        return self.attempts <= self.args.fail_first

    def refuse(self, stage):
        code = self.args.fail_code
        say(f"refused {self.attempts} {code} at {stage}")
        return f"{code} {reply_text(code)}"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.attempts += 1
        if self.failing() and self.args.fail_at == "mail":
            return self.refuse("mail")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in (a.lower() for a in self.args.reject_rcpt):
            say(f"refused {self.attempts} 550 at rcpt {address}")
            return "550 5.1.1 no such user here (sink)"
        if self.failing() and self.args.fail_at == "rcpt":
            return self.refuse("rcpt")
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.failing() and self.args.fail_at == "data":
            return self.refuse("data")
        self.accepted += 1
        name = f"{self.accepted:04d}"
        raw = envelope.original_content or b""
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        try:
            body = msg.get_content()
        except Exception as error:  # noqa: BLE001 - reported, not fatal
            body = None
            say(f"could not decode the body of {name}: {error}")
        lines = raw.split(b"\r\n")
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "auth_user": (session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword)
                          else None),
            "headers": [[k, v] for k, v in msg.raw_items()],
            "subject": str(msg["subject"]) if msg["subject"] is not None else None,
            "from": str(msg["from"]) if msg["from"] is not None else None,
            "to": str(msg["to"]) if msg["to"] is not None else None,
            "date": str(msg["date"]) if msg["date"] is not None else None,
            "message_id": str(msg["message-id"]) if msg["message-id"] is not None else None,
            "content_type": msg.get_content_type(),
            "charset": msg.get_content_charset(),
            "transfer_encoding": str(msg["content-transfer-encoding"]) if msg["content-transfer-encoding"] else None,
            "body": body,
            "defects": [type(d).__name__ for d in msg.defects]
                       + [type(d).__name__ for part in msg.walk() for d in part.defects if part is not msg],
            "max_line_octets": max((len(l) for l in lines), default=0),
            "bare_lf": b"\n" in raw.replace(b"\r\n", b""),
            "bare_cr": b"\r" in raw.replace(b"\r\n", b""),
        }
        base = os.path.join(self.args.maildir, name)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(raw)
        os.replace(base + ".eml.tmp", base + ".eml")
        with open(base + ".json.tmp", "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False, indent=1)
        os.replace(base + ".json.tmp", base + ".json")
        say(f"accepted {name}")
        return "250 2.0.0 OK: queued as " + name


async def main():
    args = parse_args()
    host, _, port = args.listen.rpartition(":")
    sink = Sink(args)
    tls_context = None
    if args.tls != "none":
        cert, key = make_certificate(args.cert_dir or os.path.join(args.maildir, ".cert"))
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(cert, key)
        say(f"cafile {cert}")

    authenticator = None
    if args.auth_user:
        password = os.environ.get("SMTP_SINK_PASSWORD", "")

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == args.auth_user
                  and auth_data.password.decode() == password)
            say(f"auth {mechanism} {'ok' if ok else 'refused'}")
            return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def factory():
        return SMTP(sink, hostname="smtp-sink", ident="smtp-sink (aiosmtpd)",
                    tls_context=tls_context if args.tls == "starttls" else None,
                    require_starttls=args.tls == "starttls",
                    authenticator=authenticator, auth_required=bool(args.auth_user),
                    auth_require_tls=args.tls != "none")

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, host or "127.0.0.1", int(port or 0),
                                      ssl=tls_context if args.tls == "implicit" else None)
    bound = server.sockets[0].getsockname()
    say(f"listening on {bound[0]}:{bound[1]}")

    done = asyncio.Event()
    if args.exit_on_stdin_eof:
        def watch():
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            finally:
                loop.call_soon_threadsafe(done.set)
        threading.Thread(target=watch, daemon=True).start()
    async with server:
        await done.wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
