"""The gate: what every request passes before its handler, in one middleware.

In this order, each refusing at once (nothing applied, the body unread):

1. admission (``admission.py``): the worker's bounds; never for probes;
2. access (``access/check.py``): token, scope, collections, rate limit;
3. query parameters (``query_parameters.py``): only those the route takes;
4. the breaker (``breaker.py``): data routes, while the backend is failing;
5. the deadline (``deadlines.py``): a data request is answered in time.

Every error raised on the way, by a check or by the handler, becomes its
problem+json answer here (``problems.answer_for``).

One middleware, not one per check: each middleware layer costs aiohttp a
wrapper call and a coroutine per request, and what a route needs from the
checks is worked out once per route (``RoutePolicy``), not per request.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_urldispatcher import AbstractRoute

from .access.check import AccessCheck
from .access.scopes import Need, need_of
from .admission import PROBES, Admission
from .breaker import BREAKER
from .config import Config
from .deadlines import DeadlineWatch, is_data_route
from .errors import BackendUnavailable
from .problems import answer_for, from_error
from .query_parameters import accepted_of, check_query


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """What the gate checks for one route (``template`` None: no route
    matched, to be answered 404 or 405)."""

    template: str | None
    probe: bool
    data: bool
    need: Need | None
    accepted: frozenset[str]


def policy_of(request: web.Request) -> RoutePolicy:
    """The policy of the route ``request`` matched (or of no route)."""
    match_info = request.match_info
    resource = match_info.route.resource
    if resource is None or match_info.http_exception is not None:
        path = request.path
        return RoutePolicy(None, path in PROBES, is_data_route(path), None, frozenset())
    template = resource.canonical
    return RoutePolicy(
        template,
        probe=template in PROBES,
        data=is_data_route(template),
        need=need_of(request.method, template),
        accepted=accepted_of(request.method, template),
    )


def gate_middleware(config: Config, admission: Admission) -> Middleware:
    access = AccessCheck(config.token, config.metrics_port)
    deadlines = DeadlineWatch(config.request_timeout)
    policies: dict[AbstractRoute, RoutePolicy] = {}

    def policy_for(request: web.Request) -> RoutePolicy:
        route = request.match_info.route
        policy = policies.get(route)
        if policy is None:
            policy = policy_of(request)
            if policy.template is not None:  # unmatched routes are made per request
                policies[route] = policy
        return policy

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            policy = policy_for(request)
            counted = not policy.probe
            if counted:
                admission.admit()
            try:
                access(request, policy.need)
                if policy.template is not None and request.query_string:
                    check_query(request, policy.template, policy.accepted)
                if not policy.data:
                    return await handler(request)
                breaker = request.app.get(BREAKER)
                if breaker is not None and breaker.is_open:
                    try:
                        breaker.check()
                    except BackendUnavailable as refused:
                        # Answered, not raised: the breaker logs when it opens
                        # and closes, not once per refused request.
                        return from_error(refused)
                return await deadlines.answer(request, handler)
            finally:
                if counted:
                    admission.release()
        except Exception as error:
            answer = answer_for(request, error)
            if answer is None:
                raise
            return answer

    return gate
