"""`vaksin chat --channel sms|ussd`: be a basic phone in your terminal, on the running system.

- USSD: each line is a key press of a `*119#` session, posted to the running `ussd` process as an
  aggregator posts it (services/devtools/fake_ussd.py); `CON` screens wait for the next line, an
  `END` screen closes the session and the next line dials again. `0` / `00` turn the pages.
- SMS: each line is an SMS to the service, delivered to the running `sms` process as Jasmin
  delivers it; the replies are caught by a fake Jasmin this tool serves at `JASMIN_URL` (the
  `sms` process's default, http://127.0.0.1:1401), so they print here. SMS sent while no chat
  runs are tried again later and arrive when one does.
"""

from __future__ import annotations

import asyncio
import sys
import urllib.parse

import aiohttp

from services.channels.settings import load_channel_settings
from services.common.settings import Settings
from services.devtools.fake_sms import FakeJasmin
from services.devtools.fake_ussd import UssdSession, session


async def run_channel_chat(settings: Settings, *, channel: str, phone: str) -> int:
    runtime = settings.runtime()
    base = runtime.get(f"{channel}_url")
    if not base:
        print(
            f"vaksin chat --channel {channel} needs a system started by `vaksin up`.",
            file=sys.stderr,
        )
        return 1
    secrets = load_channel_settings(settings.data_dir)
    if channel == "ussd":
        return await _ussd(f"{base}/ussd?key={urllib.parse.quote(secrets.ussd_secret)}", phone)
    return await _sms(base, secrets.sms_secret, secrets.jasmin_url, secrets.jasmin_password, phone)


async def _lines() -> asyncio.Queue[str | None]:
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line.strip())
        loop.call_soon_threadsafe(queue.put_nowait, None)

    loop.run_in_executor(None, read)
    return queue


async def _ussd(url: str, phone: str) -> int:
    print(f"You dial *119# from +{phone}. Type the numbers to press, Ctrl-D to quit.\n")
    lines = await _lines()
    async with aiohttp.ClientSession() as http:
        current: UssdSession | None = None
        while True:
            if current is None or current.ended:
                current = session(http, url, "+" + phone)
                answer = await current.dial()
            else:
                line = await lines.get()
                if line is None:
                    return 0
                answer = await current.press(line)
            print(f"\n[{answer.kind or answer.status}]\n{answer.text}\n", flush=True)
            if current.ended:
                print("(session ended: press Enter to dial *119# again)", flush=True)
                if await lines.get() is None:
                    return 0


async def _sms(base: str, key: str, jasmin_url: str, password: str, phone: str) -> int:
    port = urllib.parse.urlsplit(jasmin_url).port or 1401
    jasmin = FakeJasmin(password=password)
    try:
        await jasmin.start(port)
    except OSError:
        print(f"! could not serve the fake SMS gateway on port {port} (in use?)", file=sys.stderr)
        return 1
    jasmin.mo_url = f"{base}/sms/inbound?key={urllib.parse.quote(key)}"
    print(f"You text the service from +{phone}. Try VAKSIN; STOP to opt out; Ctrl-D to quit.\n")
    lines = await _lines()

    async def show() -> None:
        seen = 0
        while True:
            mine = jasmin.messages_to(phone)
            for sms in mine[seen:]:
                print(f"\nSMS> {sms.content}\n", flush=True)
            seen = len(mine)
            await asyncio.sleep(0.2)

    printer = asyncio.create_task(show())
    try:
        while (line := await lines.get()) is not None:
            if line:
                status, answer = await jasmin.deliver(phone, line)
                if answer != "ACK/Jasmin":
                    print(f"! the sms service answered {status}: {answer}")
    finally:
        printer.cancel()
        await jasmin.stop()
    return 0
