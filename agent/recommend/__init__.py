"""The one recommendation call every surface uses (CLI, chat agent, HTTP server): the Recommender
(agent.recommend.recommender), the request's modalities as text (agent.recommend.media) and the
call's arguments (agent.recommend.arguments)."""

from agent.ingest.images import poster_image  # noqa: F401 - the server (no agent.ingest import) serves posters through here
from agent.recommend.recommender import NO_EXPLANATION, Recommender  # noqa: F401 - the package's API
