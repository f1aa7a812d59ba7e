"""Password work runs in a pool bounded to the cores, off the event loop; argon2 parameters."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher

import core.security
from api.auth_pool import pool_size, run_auth
from api.routes import users
from core.security import ARGON2_PARAMS, HASH_SLOTS, hash_password, verify_password


def test_register_and_login_are_async_routes() -> None:
    # Sync routes would take a thread of the shared pool each while they hash.
    assert asyncio.iscoroutinefunction(users.register)
    assert asyncio.iscoroutinefunction(users.login)


def test_pool_is_bounded_and_keeps_the_loop_free() -> None:
    lock = threading.Lock()
    running = peak = 0

    def job() -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return threading.current_thread().name

    async def main() -> tuple[list[str], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        tick = asyncio.create_task(ticker())
        names = await asyncio.gather(*(run_auth(job) for _ in range(pool_size() * 3)))
        tick.cancel()
        return names, ticks

    # A thread of its own: other tests (Playwright's sync API) may leave a loop running here.
    with ThreadPoolExecutor(1, thread_name_prefix="loop") as runner:
        names, ticks = runner.submit(asyncio.run, main()).result()
    assert 2 <= peak <= pool_size()
    assert not any(name.startswith("loop") for name in names)  # never on the loop's thread
    assert ticks > 5  # the loop kept running while the jobs waited and ran


def test_argon2_parameters_and_old_hashes_are_upgraded_at_login() -> None:
    stored = hash_password("correct-horse-9")
    expected = f"m={ARGON2_PARAMS['memory_cost']},t={ARGON2_PARAMS['time_cost']},p=1"
    assert stored.startswith("$argon2id$") and expected in stored
    old = PasswordHasher().hash("correct-horse-9")  # argon2-cffi's defaults (64 MiB, p=4)
    valid, new_hash = verify_password("correct-horse-9", old)
    assert valid and new_hash and expected in new_hash
    assert verify_password("wrong", stored) == (False, None)


def test_at_most_one_hash_per_core_at_once(monkeypatch) -> None:
    lock = threading.Lock()
    running = peak = 0
    real = core.security._password_hash.hash

    def counting(password: str) -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            return real(password)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(core.security._password_hash, "hash", counting)
    threads = [threading.Thread(target=hash_password, args=("pw-1234567",)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1 <= peak <= HASH_SLOTS  # without the slots all 8 would run at once
