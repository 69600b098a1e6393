#!/usr/bin/env python3
"""Google ADK's DatabaseSessionService on SQLite: the peer row of `cargo bench -p state-bench`.

The bench runs this script when a Python with ADK is found (`STATE_BENCH_PYTHON`, else
`python3`); install it with `pip install "google-adk[db]" aiosqlite`. Each mode prints one line of
`name=value` pairs for the bench to read.

  adk.py check
      prints `adk=<version>`, or `missing=<modules>` and exits 1
  adk.py events --db FILE --seconds S --sessions N
      N sessions (one user each) append events for S seconds, each session one after the
      other, all sessions at once; every event's state_delta sets one session key and one
      `user:` key. Prints events_per_s, events, errors (appends that raised), event_bytes (the
      JSON size of the event, as Pydantic dumps it: the bench stores events of that size).
  adk.py lost --db FILE --increments N   (writes FILE.session and FILE.user)
      two service instances (two engines on one file) each do N read-modify-write increments
      of one key at once, as ADK code does (get_session, read state, append_event with the new
      value): both read, meet at a barrier, then both write, so the two race every round.
      Once for a session key (both on one session) and once for a `user:` key (one session
      each). Prints, per key kind, the increments acknowledged, the final value, the lost
      updates (acknowledged minus final), stale-session errors and other errors.

Every --db file must be new (a session cannot be created twice). A run that fails prints
`error=<what>` as its last line and exits 1. ADK's DatabaseSessionService keeps SQLite's
defaults: a rollback journal, synchronous=FULL.
"""

import argparse
import asyncio
import os
import sys
import time


def adk_modules():
    from google.adk.events import Event, EventActions
    from google.adk.sessions import DatabaseSessionService
    from google.genai import types

    return Event, EventActions, DatabaseSessionService, types


def event(i, delta):
    Event, EventActions, _, types = adk_modules()
    return Event(
        invocation_id=f"inv-{i}",
        author="agent",
        content=types.Content(role="model", parts=[types.Part(text=f"step {i} done")]),
        actions=EventActions(state_delta=delta),
    )


def service(db):
    _, _, DatabaseSessionService, _ = adk_modules()
    return DatabaseSessionService(db_url=f"sqlite+aiosqlite:///{db}")


async def events(db, seconds, sessions):
    svc = service(db)
    try:
        await events_on(svc, seconds, sessions)
    finally:
        await svc.close()


async def events_on(svc, seconds, sessions):
    made = [
        await svc.create_session(app_name="bench", user_id=f"u{t}", session_id=f"s{t}")
        for t in range(sessions)
    ]
    counts = [0] * sessions
    errors = [0]
    deadline = time.monotonic() + seconds

    async def run(t):
        session = made[t]
        while time.monotonic() < deadline:
            i = counts[t]
            try:
                await svc.append_event(session, event(i, {"step": i, "user:last_step": i}))
                counts[t] += 1
            except Exception:  # a locked database, a stale session: counted, the session re-read
                errors[0] += 1
                try:
                    session = await svc.get_session(
                        app_name="bench", user_id=f"u{t}", session_id=f"s{t}"
                    )
                except Exception:
                    errors[0] += 1

    start = time.monotonic()
    await asyncio.gather(*(run(t) for t in range(sessions)))
    elapsed = time.monotonic() - start
    size = len(event(0, {"step": 0, "user:last_step": 0}).model_dump_json(exclude_none=True))
    total = sum(counts)
    print(f"events_per_s={total / elapsed:.1f} events={total} errors={errors[0]} event_bytes={size}")


async def lost_one(db, increments, key, sessions):
    """Two instances incrementing `key`; `sessions` names the session each instance uses."""
    svcs = [service(db), service(db)]
    try:
        return await lost_on(svcs, increments, key, sessions)
    finally:
        for svc in svcs:
            await svc.close()


async def lost_on(svcs, increments, key, sessions):
    for sid in set(sessions):
        await svcs[0].create_session(
            app_name="lost", user_id="u", session_id=sid, state={key: 0}
        )
    tallies = {"acked": 0, "stale": 0, "errors": 0}
    barrier = asyncio.Barrier(2)

    async def run(svc, sid):
        done = 0
        while done < increments:
            session = await svc.get_session(app_name="lost", user_id="u", session_id=sid)
            n = session.state.get(key, 0)
            await barrier.wait()  # both have read: now both write
            try:
                await svc.append_event(session, event(n, {key: n + 1}))
                tallies["acked"] += 1
            except Exception as e:
                kind = "stale" if type(e).__name__ == "StaleSessionError" else "errors"
                tallies[kind] += 1
            done += 1

    await asyncio.gather(*(run(svc, sid) for svc, sid in zip(svcs, sessions)))
    final = (await svcs[0].get_session(app_name="lost", user_id="u", session_id=sessions[0])).state[key]
    return tallies["acked"], final, tallies["stale"], tallies["errors"]


async def lost(db, increments):
    fields = []
    for name, key, sessions in [("session", "n", ["s", "s"]), ("user", "user:n", ["s1", "s2"])]:
        acked, final, stale, errors = await lost_one(f"{db}.{name}", increments, key, sessions)
        fields += [
            f"{name}_acked={acked}",
            f"{name}_final={final}",
            f"{name}_lost={acked - final}",
            f"{name}_stale={stale}",
            f"{name}_errors={errors}",
        ]
    print(" ".join(fields))


def check():
    """Which of the modules the bench needs are missing (all of them, not the first)."""
    missing = []
    for module in ["google.adk", "aiosqlite", "sqlalchemy"]:
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if not missing:
        try:
            adk_modules()
        except ImportError as e:
            missing.append(e.name or "google-adk[db]")
    if missing:
        print(f"missing={','.join(missing)}")
        return 1
    import google.adk

    print(f"adk={google.adk.__version__}")
    return 0


def positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
        return value

    return parse


def arguments():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["check", "events", "lost"], help="what to run")
    parser.add_argument("--db", help="a new SQLite file (events, lost)")
    parser.add_argument("--seconds", type=positive(float), default=1.0, help="events: how long")
    parser.add_argument("--sessions", type=positive(int), default=1, help="events: sessions at once")
    parser.add_argument(
        "--increments", type=positive(int), default=200, help="lost: attempts per instance"
    )
    args = parser.parse_args()
    if args.mode != "check":
        if not args.db:
            parser.error(f"{args.mode} needs --db FILE")
        files = [args.db] if args.mode == "events" else [f"{args.db}.session", f"{args.db}.user"]
        if any(os.path.exists(f) for f in files):
            parser.error(f"--db {args.db}: the file exists; give a new one")
        if not os.path.isdir(os.path.dirname(os.path.abspath(args.db))):
            parser.error(f"--db {args.db}: its directory does not exist")
    return args


def main():
    args = arguments()
    try:
        if args.mode == "check":
            code = check()
        elif args.mode == "events":
            asyncio.run(events(args.db, args.seconds, args.sessions))
            code = 0
        else:
            asyncio.run(lost(args.db, args.increments))
            code = 0
    except Exception as e:  # one line the bench can show, not a traceback
        print(f"error={type(e).__name__}: {' '.join(str(e).split())[:300]}")
        code = 1
    # Leave at once either way: a connection a failed run left open must not keep the
    # process alive.
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
