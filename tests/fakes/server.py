"""Small fakes of Recommender and ChatAgent (the contracts in agent/recommend.py and agent/chat/agent.py)
for the server's unit tests: fast, deterministic, and strict about bad input like the real ones."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from agent.core.errors import InputError

MOVIES = {
    "1": ("Toy Story", 1995, ["Animation", "Children", "Comedy"]),
    "2": ("Jumanji", 1995, ["Adventure", "Children", "Fantasy"]),
    "260": ("Star Wars: Episode IV - A New Hope", 1977, ["Action", "Adventure", "Sci-Fi"]),
    "318": ("Shawshank Redemption, The", 1994, ["Crime", "Drama"]),
    "2355": ("Bug's Life, A", 1998, ["Adventure", "Animation", "Children", "Comedy"]),
}
USERS = {"1": ["260", "318"], "2": ["1"]}


def wait_healthy(proc: subprocess.Popen, base: str, seconds: float = 120, log: Path | None = None) -> None:
    """Wait until a real `recsage serve` at ``base`` answers /healthz; fail with its output (``log``, or
    the process's piped stdout) if it exits, or after ``seconds``."""
    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=2).json()["status"] == "ok":
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            output = log.read_text()[-3000:] if log else (proc.stdout.read() if proc.stdout else "")
            raise AssertionError(f"recsage serve exited {proc.returncode}:\n{output}")
        assert time.monotonic() < deadline, f"recsage serve did not answer /healthz in {seconds:.0f} s"
        time.sleep(0.5)


def write_poster(path: Path) -> Path:
    """A small real JPEG (a coloured block), so a browser can render it."""
    from PIL import Image

    Image.new("RGB", (37, 56), (200, 60, 40)).save(path, "JPEG")
    return path


def _media_text(path: Path | None, kind: str) -> str:
    """The fakes' 'converter': the file's text; a file saying 'silence' has no content."""
    if path is None:
        return ""
    text = Path(path).read_bytes().decode("utf-8", "replace").strip()
    if not text or text == "silence":
        raise InputError(f"no {'speech' if kind == 'audio' else 'text'} found in the {kind}")
    return text


class FakeRecommender:
    def __init__(self, poster_dir: Path | None = None, delay_s: float = 0.0):
        self.poster_dir, self.delay_s = poster_dir, delay_s
        self.calls: list[dict] = []
        self.lock = threading.Lock()

    def _row(self, item_id: str, rank: int, explain: bool) -> dict:
        title, year, genres = MOVIES[item_id]
        return {"id": item_id, "title": title, "year": year, "facets": {"genres": genres}, "rank": rank,
                "score": 1.0 / rank, "evidence": {"genres": genres},
                "explanation": f"{title} matches your request." if explain else None,
                "explanation_status": "generated" if explain else None, "cites": ["genres"] if explain else []}

    def recommend(self, *, user=None, history=None, k=10, query=None, image=None, audio=None, video=None, filters=None,
                  exclude=(), explain=False, rerank=None, understand=False) -> dict:
        time.sleep(self.delay_s)
        with self.lock:
            self.calls.append({"user": user, "query": query, "image": image, "audio": audio, "k": k, "filters": filters,
                               "understand": understand,
                               "audio_bytes": Path(audio).stat().st_size if audio else 0})
        if user is not None and user not in USERS:
            raise InputError(f"unknown user {user!r}")
        if not 1 <= k <= 100:
            raise InputError(f"k must be 1..100, got {k}")
        request_text = {}
        if query:
            request_text["query"] = query
        if image is not None:
            request_text["photo_text"] = _media_text(image, "image")
        if audio is not None:
            request_text["transcript"] = _media_text(audio, "audio")
        if user is None and not history and not request_text:
            raise InputError("give a user, a history or a request")
        seen = set(USERS.get(user, [])) | set(history or []) | set(exclude)
        ids = [i for i in MOVIES if i not in seen]
        if filters is not None:
            ids = [i for i in ids if filters.keeps_facets({"genres": MOVIES[i][2]})]
        items = [self._row(i, r, explain) for r, i in enumerate(ids[:k], start=1)]
        return {"user": user, "history_size": len(seen), "request_text": request_text, "reranked": False,
                "items": items, "timings": {"total": self.delay_s}}

    def item(self, item_id: str) -> dict:
        if item_id not in MOVIES:
            raise InputError(f"unknown item {item_id!r}")
        title, year, genres = MOVIES[item_id]
        poster = None
        if self.poster_dir is not None and item_id in ("1", "260"):
            poster = self.poster_dir / f"{item_id}.jpg"
            if not poster.exists():
                write_poster(poster)
        return {"id": item_id, "title": title, "year": year, "facets": {"genres": genres}, "tags": [], "card": title,
                "poster": str(poster) if poster else None}


class FakeSession:
    def __init__(self, recommender: FakeRecommender, user: str | None):
        self.recommender, self.user = recommender, user
        self.turns: list[str] = []
        self.shown: list[str] = []

    def send(self, text: str, image: Path | None = None, audio: Path | None = None, video: Path | None = None):
        if text.strip() == "slow":
            time.sleep(2.0)
        result = self.recommender.recommend(user=self.user, query=text or None, image=image, audio=audio, k=3,
                                            exclude=self.shown if "not that" in text else (), explain=True)
        self.turns.append(text)
        yield {"type": "tool", "name": "recommend", "arguments": {"query": text}}
        yield {"type": "observation", "text": f"{len(result['items'])} items"}
        yield {"type": "items", "items": result["items"]}
        answer = "Try " + ", ".join(i["title"] for i in result["items"]) + "."
        for word in answer.split(" "):
            yield {"type": "token", "text": word + " "}
        self.shown = [i["id"] for i in result["items"]]
        yield {"type": "done", "answer": answer, "items": result["items"], "tool": "recommend"}

    def reset(self) -> None:
        self.turns.clear()
        self.shown.clear()


class FakeChatAgent:
    def __init__(self, recommender: FakeRecommender):
        self.recommender = recommender

    def session(self, user: str | None = None) -> FakeSession:
        if user is not None and user not in USERS:
            raise InputError(f"unknown user {user!r}")
        return FakeSession(self.recommender, user)

    def session_from_messages(self, messages: list[dict], user: str | None = None):
        users = [m["content"] for m in messages if m["role"] == "user"]
        if not users:
            raise InputError("the conversation has no user message")
        session = self.session(user)
        session.turns = users[:-1]
        return session, users[-1]
