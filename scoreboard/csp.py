"""A Content-Security-Policy header on every response, built once from settings.SECURE_CSP.

Django 5.2 has no CSP support; Django 6.0's ContentSecurityPolicyMiddleware reads the same
setting, so moving to it is a one-line change in MIDDLEWARE.
"""

import functools

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin
from django.views.decorators.clickjacking import xframe_options_exempt


def policy_header(policy: dict[str, list[str]]) -> str:
    return "; ".join(" ".join([directive, *sources]) for directive, sources in policy.items())


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    # MiddlewareMixin runs sync and async alike, so async views stay on the event loop.

    def __init__(self, get_response) -> None:
        super().__init__(get_response)
        self.header = policy_header(settings.SECURE_CSP)

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        response.headers.setdefault("Content-Security-Policy", self.header)
        return response


def embeddable(view):
    """Let the origins in settings.LIVE_EMBED_ORIGINS (and no one else) frame this view.

    Its own policy names them in frame-ancestors, and it sends no X-Frame-Options, which can
    only say DENY or SAMEORIGIN. Every other response keeps frame-ancestors 'none' and DENY.
    """

    @functools.wraps(view)
    def framable(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        ancestors = settings.LIVE_EMBED_ORIGINS or ["'none'"]
        response.headers["Content-Security-Policy"] = policy_header(
            {**settings.SECURE_CSP, "frame-ancestors": ancestors}
        )
        return response

    return xframe_options_exempt(framable)
