"""The registry client (issue 15 items 3 and 7): tag lists, digests, auth, rate limits, the cache and the budget,
against Debian's docker-registry (tests/registries.py: no auth, htpasswd, token auth), with a counting front end
where a test must see requests, pages or faults; the pure parts (references, challenges, links, Retry-After, the
rate limit) by tables."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest

from gitops_job.errors import ImageError
from gitops_job.oci import (
    Challenge,
    basic,
    next_link,
    parse_challenges,
    parse_links,
    pull_scope,
    same_origin,
    token_of,
    token_query,
    token_url,
)
from gitops_job.registry import (
    MAX_BODY,
    Credentials,
    Failure,
    ImageRef,
    RateLimit,
    Registry,
    RegistryError,
    is_loopback,
    parse_retry_after,
)
from tests.registries import Front, RegistryServer, front
from tests.serving import free_port

PASSWORD = "s3cret-Pa55word"  # the registries' user (tests/registries.py); planted: no output may contain it


def config_for(host: str, password: str = PASSWORD, user: str = "alice") -> dict[str, object]:
    """A docker config.json naming ``host``, with its ``auth`` as docker login writes it."""
    return {"auths": {host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}


def versions(n: int, prefix: str = "1.0.") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


# -- the pure parts ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest", "formatted"),
    [
        ("app", "docker.io", "library/app", None, None, "docker.io/library/app"),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None, "docker.io/library/nginx:1.25"),
        ("acme/app:v1", "docker.io", "acme/app", "v1", None, "docker.io/acme/app:v1"),
        ("docker.io/app", "docker.io", "library/app", None, None, "docker.io/library/app"),
        ("index.docker.io/acme/app", "docker.io", "acme/app", None, None, "docker.io/acme/app"),
        ("ghcr.io/acme/app", "ghcr.io", "acme/app", None, None, "ghcr.io/acme/app"),
        ("ghcr.io/acme/team/app:1.2.3", "ghcr.io", "acme/team/app", "1.2.3", None, "ghcr.io/acme/team/app:1.2.3"),
        ("localhost:5000/app", "localhost:5000", "app", None, None, "localhost:5000/app"),
        ("localhost/app:dev", "localhost", "app", "dev", None, "localhost/app:dev"),
        ("127.0.0.1:5000/a/b:1", "127.0.0.1:5000", "a/b", "1", None, "127.0.0.1:5000/a/b:1"),
        ("[::1]:5000/app", "[::1]:5000", "app", None, None, "[::1]:5000/app"),
        ("ghcr.io/acme/app@sha256:" + "a" * 64, "ghcr.io", "acme/app", None, "sha256:" + "a" * 64,
         "ghcr.io/acme/app@sha256:" + "a" * 64),
        ("ghcr.io/acme/app:1@sha256:" + "b" * 64, "ghcr.io", "acme/app", "1", "sha256:" + "b" * 64,
         "ghcr.io/acme/app:1@sha256:" + "b" * 64),
        ("my_org/my-app__x.y", "docker.io", "my_org/my-app__x.y", None, None, "docker.io/my_org/my-app__x.y"),
    ],
)  # fmt: skip
def test_image_ref_parsing(text: str, registry: str, repository: str, tag: str | None, digest: str | None,
                           formatted: str) -> None:  # fmt: skip
    ref = ImageRef.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert str(ref) == formatted
    assert ImageRef.parse(str(ref)) == ref  # formatted once, read back the same
    assert ref.name == formatted.partition("@")[0].rsplit(":", 1)[0] if tag else ref.name in formatted


def test_docker_hub_is_asked_at_its_api_host() -> None:
    assert ImageRef.parse("app").api_host == "registry-1.docker.io"
    assert ImageRef.parse("ghcr.io/a/b").api_host == "ghcr.io"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("Acme/App", "lower-case components"),
        ("ghcr.io/acme/-app", "lower-case components"),
        ("ghcr.io/acme//app", "lower-case components"),
        ("ghcr.io/acme/app:", "a tag is"),
        ("ghcr.io/acme/app:-x", "a tag is"),
        ("ghcr.io/acme/app@sha256:abc", "a digest is"),
        ("ghcr.io/../etc", "lower-case components"),
        ("", "lower-case components"),
    ],
)
def test_invalid_references_name_the_text_and_the_rule(text: str, why: str) -> None:
    with pytest.raises(ImageError) as e:
        ImageRef.parse(text)
    assert str(e.value).startswith("images: image reference: ")
    assert repr(text) in str(e.value) and why in str(e.value)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("localhost", True), ("localhost:5000", True), ("127.0.0.1:5000", True), ("127.9.9.9", True),
     ("[::1]:5000", True), ("ghcr.io", False), ("10.0.0.1:5000", False), ("localhost.example.com", False)],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("header", "challenges"),
    [
        ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/x:pull"',
         [Challenge("bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                               "scope": "repository:library/x:pull"})]),
        ('Basic realm="Registry Realm"', [Challenge("basic", {"realm": "Registry Realm"})]),
        ('basic realm=x', [Challenge("basic", {"realm": "x"})]),
        ('Bearer realm="https://ghcr.io/token", service="ghcr.io" , scope="repository:a/b:pull"',
         [Challenge("bearer", {"realm": "https://ghcr.io/token", "service": "ghcr.io",
                               "scope": "repository:a/b:pull"})]),
        ('Bearer realm="a\\"b",Service="s"', [Challenge("bearer", {"realm": 'a"b', "service": "s"})]),
        ('Bearer realm="https://r/t", Basic realm="b"',
         [Challenge("bearer", {"realm": "https://r/t"}), Challenge("basic", {"realm": "b"})]),
        ('Bearer realm="https://r/t?x=1,2"', [Challenge("bearer", {"realm": "https://r/t?x=1,2"})]),
        ("Negotiate", [Challenge("negotiate", {})]),
        ("", []),
    ],
)  # fmt: skip
def test_www_authenticate_parsing(header: str, challenges: list[Challenge]) -> None:
    assert parse_challenges(header) == challenges


@pytest.mark.parametrize(
    ("header", "base", "following"),
    [
        ('</v2/a/tags/list?n=2&last=b>; rel="next"', "https://r.io/v2/a/tags/list?n=2", "https://r.io/v2/a/tags/list?n=2&last=b"),
        ("<https://r.io/v2/a/tags/list?last=b>; rel=next", "https://r.io/v2/a/tags/list", "https://r.io/v2/a/tags/list?last=b"),
        ('<https://other.io/x>; rel="next"', "https://r.io/v2/a/tags/list", "https://other.io/x"),
        ('</prev>; rel="prev", </next>; rel="next"', "https://r.io/v2/a", "https://r.io/next"),
        ('</x>; title="a;b"; rel="next"', "https://r.io/", None),  # a quoted ; is not a parameter break we promise
        ('</p>; rel="prev"', "https://r.io/", None),
        ('</both>; rel="next last"', "https://r.io/", "https://r.io/both"),
        ("", "https://r.io/", None),
    ],
)  # fmt: skip
def test_link_next(header: str, base: str, following: str | None) -> None:
    if following is None and "title" in header:
        return  # documented as not promised; checked only not to crash below
    assert next_link(header, base) == following


def test_link_parsing_keeps_every_target_and_its_parameters() -> None:
    assert parse_links('</a>; rel="next"; type=x, <https://h/b>;rel=prev') == [
        ("/a", {"rel": "next", "type": "x"}),
        ("https://h/b", {"rel": "prev"}),
    ]
    next_link('</x>; title="a;b"; rel="next"', "https://r.io/")  # no crash


@pytest.mark.parametrize(
    ("realm", "service", "scope", "url"),
    [
        ("https://auth.io/token", "reg.io", "repository:a/b:pull", "https://auth.io/token?service=reg.io&scope=repository%3Aa%2Fb%3Apull"),
        ("https://auth.io/token?x=1", None, "repository:a:pull", "https://auth.io/token?x=1&scope=repository%3Aa%3Apull"),
        ("http://127.0.0.1:5/t", "", "repository:a:pull", "http://127.0.0.1:5/t?scope=repository%3Aa%3Apull"),
    ],
)  # fmt: skip
def test_token_request_url(realm: str, service: str | None, scope: str, url: str) -> None:
    assert token_url(realm, token_query(service, scope)) == url
    assert pull_scope("a/b") == "repository:a/b:pull"


@pytest.mark.parametrize(
    ("body", "token"),
    [
        (b'{"token": "t1", "expires_in": 300}', ("t1", 300.0)),
        (b'{"access_token": "t2"}', ("t2", 60.0)),
        (b'{"token": "", "access_token": "t3"}', ("t3", 60.0)),
        (b'{"token": ""}', None),
        (b'{"token": 5}', None),
        (b'{"token": "t", "expires_in": "soon"}', None),
        (b"[]", None),
        (b"<html>", None),
    ],
)
def test_token_answer(body: bytes, token: tuple[str, float] | None) -> None:
    if token is None:
        with pytest.raises(ValueError):
            token_of(body)
    else:
        assert token_of(body) == token


def test_basic_is_the_base64_of_user_colon_password() -> None:
    assert base64.b64decode(basic("alice", "pa:ss")) == b"alice:pa:ss"


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [("https://r.io/v2/a", "https://r.io/v2/b?x", True), ("https://r.io/a", "https://r.io:443/b", True),
     ("http://r.io/a", "https://r.io/a", False), ("https://r.io/a", "https://s.io/a", False),
     ("http://127.0.0.1:5000/a", "http://127.0.0.1:5001/a", False), ("https://R.io/a", "https://r.io/b", True)],
)  # fmt: skip
def test_same_origin(a: str, b: str, same: bool) -> None:
    assert same_origin(a, b) is same


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("3", 3.0), (" 120 ", 120.0), ("0", 0.0), ("Thu, 01 Jan 1970 00:00:10 GMT", 10.0),
     ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0), (None, None), ("", None), ("soon", None), ("-1", None)],
)  # fmt: skip
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=0.0) == seconds


def test_rate_limit_bucket_spends_the_burst_then_paces() -> None:
    limit = RateLimit(rate=10, burst=3)
    assert [limit.take(100.0) for _ in range(3)] == [0, 0, 0]  # the burst
    assert [round(limit.take(100.0), 3) for _ in range(3)] == [0.1, 0.2, 0.3]  # then one per 1/rate
    assert limit.take(101.0) == 0  # refilled while idle (up to the burst)


def test_rate_limit_halves_on_429_and_waits_out_retry_after() -> None:
    limit = RateLimit(rate=8, burst=4)
    limit.take(0.0)
    limit.throttled(0.0, retry_after=2.0)
    assert limit.rate == 4
    assert limit.take(0.0) == pytest.approx(2.25)  # the pause, then an empty bucket at the halved rate
    for _ in range(10):
        limit.throttled(5.0, None)
    assert limit.rate == limit.floor  # never to zero


# -- tags and digests against the real registry ---------------------------------------------------------------------


def test_anonymous_tags_and_head_digests(registry: RegistryServer) -> None:
    """No auth: the tags as pushed, and a HEAD's digest equals the sha256 of the manifest pushed for the tag."""
    digests = registry.pusher().push("acme/app", ["1.0.0", "1.1.0", "latest"])
    with front(registry.host) as f, Registry() as r:
        found = r.tags(f"{f.host}/acme/app")
        assert sorted(found.tags) == ["1.0.0", "1.1.0", "latest"]
        assert (found.from_cache, found.truncated, found.pages, found.warnings) == (False, False, 1, ())
        assert found.repository == ImageRef(f.host, "acme/app")
        assert r.digest(found.repository, "1.1.0") == digests["1.1.0"]
        heads = [s for s in f.seen if "/manifests/" in s.path]
        assert [s.method for s in heads] == ["HEAD"]  # never a GET when a HEAD does
    assert r.requests == {"GET registry": 1, "HEAD registry": 1}


def test_unknown_repository_and_tag_are_not_found(registry: RegistryServer) -> None:
    registry.pusher().push("acme/app", ["1.0.0"])
    with Registry() as r:
        with pytest.raises(RegistryError) as e:
            r.tags(f"{registry.host}/acme/nope")
        assert e.value.failure is Failure.NOT_FOUND and e.value.status == 404
        assert str(e.value).startswith(f"images: {registry.host}/acme/nope: could not list its tags: ")
        assert "HTTP 404" in str(e.value) and "check the repository name" in str(e.value)
        with pytest.raises(RegistryError) as e:
            r.digest(f"{registry.host}/acme/app", "9.9.9")
        assert e.value.failure is Failure.NOT_FOUND


def test_basic_auth_with_credentials(registry_htpasswd: RegistryServer) -> None:
    """htpasswd: the challenge is answered with the config's credentials; later requests send them at once."""
    host = registry_htpasswd.host
    digests = registry_htpasswd.pusher().push("team/app", versions(3))
    with front(host) as f, Registry(Credentials.dockerconfigjson(config_for(f.host))) as r:
        assert sorted(r.tags(f"{f.host}/team/app").tags) == versions(3)
        assert r.digest(f"{f.host}/team/app", "1.0.2") == digests["1.0.2"]
        assert [(s.method, s.authorization, s.status) for s in f.seen] == [
            ("GET", False, 401), ("GET", True, 200), ("HEAD", True, 200)
        ]  # fmt: skip


def test_basic_auth_without_credentials_says_to_add_them(registry_htpasswd: RegistryServer) -> None:
    registry_htpasswd.pusher().push("team/app", ["1"])
    with Registry() as r, pytest.raises(RegistryError) as e:
        r.tags(f"{registry_htpasswd.host}/team/app")
    assert e.value.failure is Failure.UNAUTHORIZED and e.value.status == 401
    assert f"add credentials for {registry_htpasswd.host}" in str(e.value)


def test_kubernetes_style_username_and_password_entries(registry_htpasswd: RegistryServer) -> None:
    """An imagePullSecret's .dockerconfigjson may give username and password without ``auth``."""
    registry_htpasswd.pusher().push("team/app", ["1"])
    secret = {"auths": {registry_htpasswd.host: {"username": "alice", "password": PASSWORD}}}
    with Registry(Credentials.dockerconfigjson(secret, source="Secret apps/pull")) as r:
        assert r.tags(f"{registry_htpasswd.host}/team/app").tags == ("1",)


def test_docker_config_file(registry_htpasswd: RegistryServer, tmp_path: Path) -> None:
    registry_htpasswd.pusher().push("team/app", ["1"])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config_for(f"https://{registry_htpasswd.host}/v1/")))  # a legacy URL key: host only
    with Registry(Credentials.docker_config(path)) as r:
        assert r.tags(f"{registry_htpasswd.host}/team/app").tags == ("1",)
    with Registry(Credentials.docker_config(tmp_path / "missing.json")) as r, pytest.raises(RegistryError):
        r.tags(f"{registry_htpasswd.host}/team/app")  # no file: anonymous, refused


def test_token_auth_anonymous_pull_scope(registry_token: RegistryServer) -> None:
    """Token auth: an anonymous token for a public repository; one token per scope for the whole run."""
    digests = registry_token.pusher().push("public/app", versions(4))
    registry_token.pusher().push("private/app", ["1"])
    tokens = registry_token.tokens
    assert tokens is not None
    with Registry() as r:
        ref = f"{registry_token.host}/public/app"
        assert sorted(r.tags(ref).tags) == versions(4)
        assert r.digest(ref, "1.0.3") == digests["1.0.3"]
        assert r.digest(ref, "1.0.1") == digests["1.0.1"]
        asked = [t for t in tokens.issued if t[1] == "repository:public/app:pull"]
        assert asked == [(None, "repository:public/app:pull")]  # anonymous, once
        assert r.requests["GET token"] == 1
        with pytest.raises(RegistryError) as e:
            r.tags(f"{registry_token.host}/private/app")  # the anonymous token grants nothing there
        assert e.value.failure is Failure.UNAUTHORIZED
        assert f"add credentials for {registry_token.host}" in str(e.value)


def test_token_auth_with_credentials(registry_token: RegistryServer) -> None:
    registry_token.pusher().push("private/app", versions(2))
    tokens = registry_token.tokens
    assert tokens is not None
    with Registry(Credentials.dockerconfigjson(config_for(registry_token.host))) as r:
        assert sorted(r.tags(f"{registry_token.host}/private/app").tags) == versions(2)
    assert ("alice", "repository:private/app:pull") in tokens.issued


def test_token_auth_with_an_identity_token(registry_token: RegistryServer) -> None:
    """A config entry with an ``identitytoken`` (what ``docker login`` stores for OAuth2 registries): the token is
    fetched by the OAuth2 refresh-token POST, never sent as a password."""
    registry_token.pusher().push("private/app", ["1"])
    tokens = registry_token.tokens
    assert tokens is not None
    config = {"auths": {registry_token.host: {"identitytoken": f"refresh-{PASSWORD}"}}}
    with Registry(Credentials.dockerconfigjson(config)) as r:
        assert r.tags(f"{registry_token.host}/private/app").tags == ("1",)
        assert r.requests["POST token"] == 1 and r.requests["GET token"] == 0
    assert ("alice", "repository:private/app:pull") in tokens.issued
    wrong = {"auths": {registry_token.host: {"identitytoken": "refresh-wrong-planted"}}}
    with Registry(Credentials.dockerconfigjson(wrong, source="Secret apps/pull")) as r, \
            pytest.raises(RegistryError) as e:  # fmt: skip
        r.tags(f"{registry_token.host}/private/app")
    assert e.value.failure is Failure.UNAUTHORIZED and "from Secret apps/pull" in str(e.value)
    assert "refresh-wrong-planted" not in str(e.value)


HELPER = """#!/bin/sh
# A docker credential helper (the protocol of docker-credential-helpers): `get` reads a server URL on stdin.
read -r server
case "$1:$server" in
  get:{host}) printf '{{"ServerURL":"%s","Username":"alice","Secret":"{password}"}}' "$server" ;;
  get:*) echo "credentials not found in native keychain"; exit 1 ;;
  list) echo '{{}}' ;;
  *) exit 1 ;;
esac
"""


@pytest.mark.parametrize("key", ["credHelpers", "credsStore"])
def test_credential_helpers_through_docker_auth(registry_htpasswd: RegistryServer, tmp_path: Path, key: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """``credHelpers`` (per registry) and ``credsStore`` (for all) run the named helper, as ``docker pull`` does."""
    registry_htpasswd.pusher().push("team/app", ["1"])
    helper = tmp_path / "bin" / "docker-credential-test"
    helper.parent.mkdir()
    helper.write_text(HELPER.format(host=registry_htpasswd.host, password=PASSWORD))
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper.parent}:{os.environ['PATH']}")
    config = tmp_path / "config.json"
    value = {registry_htpasswd.host: "test"} if key == "credHelpers" else "test"
    config.write_text(json.dumps({key: value}))
    with Registry(Credentials.docker_config(config)) as r:
        assert r.tags(f"{registry_htpasswd.host}/team/app").tags == ("1",)
        credential = r.credentials.for_host(registry_htpasswd.host)
        assert credential is not None and credential.username == "alice" and PASSWORD not in repr(credential)
        if key == "credsStore":
            assert r.credentials.for_host("ghcr.io") is None  # the helper has none: anonymous


def test_a_missing_credential_helper_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"credHelpers": {"ghcr.io": "not-installed-anywhere"}}))
    with pytest.raises(ImageError) as e:  # asked for when a registry challenges; here directly (no network)
        Credentials.docker_config(config).for_host("ghcr.io")
    assert str(e.value).startswith(f"images: {config}: credentials for ghcr.io: the credentials could not be read")
    assert "helper is installed" in str(e.value)


def test_an_invalid_auth_entry_is_a_clear_error_without_its_value() -> None:
    credentials = Credentials.dockerconfigjson({"auths": {"ghcr.io": {"auth": "bm8tY29sb24tcGxhbnRlZA=="}}})
    with pytest.raises(ImageError) as e:
        credentials.for_host("ghcr.io")
    assert "`auth` must be the base64 of username:password" in str(e.value)
    assert "bm8tY29sb24tcGxhbnRlZA" not in str(e.value) and "no-colon-planted" not in str(e.value)


# -- pagination, the budget, links to other hosts --------------------------------------------------------------------


def test_pagination_follows_link_on_the_same_origin(registry: RegistryServer) -> None:
    registry.pusher().push("acme/app", versions(23))
    with front(registry.host, page=5) as f, Registry(page_size=5) as r:
        found = r.tags(f"{f.host}/acme/app")
        assert sorted(found.tags) == sorted(versions(23))
        assert len(found.tags) == 23 and found.pages == 5 and not found.truncated
        lists = [s for s in f.seen if s.path.endswith("/tags/list")]
        assert [s.query.get("n") for s in lists] == ["5"] * 5
        assert [s.query.get("last") is None for s in lists] == [True, False, False, False, False]


def test_10000_tags_paginated_and_within_the_budget(registry: RegistryServer) -> None:
    """Row "a tag list of 10,000 tags": ten pages of 1000; with a budget of 2500 the list stops after three pages
    and says so."""
    tags = versions(10_000, prefix="2.")
    registry.pusher().push_many({"big/app": tags})
    with front(registry.host, page=1000) as f:
        with Registry() as r:
            found = r.tags(f"{f.host}/big/app")
        assert len(found.tags) == 10_000 and set(found.tags) == set(tags)
        assert found.pages == 10 and not found.truncated and found.warnings == ()
        f.seen.clear()
        with Registry(max_tags=2500) as r:
            cut = r.tags(f"{f.host}/big/app")
        assert len(cut.tags) == 2500 and cut.truncated and cut.pages == 3
        assert cut.tags == found.tags[:2500]
        assert f.count("GET", "/tags/list") == 3
        assert len(cut.warnings) == 1 and "stopped at the budget of 2500 tags (max_tags)" in cut.warnings[0]


def test_budget_on_a_registry_that_ignores_n(registry: RegistryServer) -> None:
    """distribution 2.8 answers every tag in one page whatever ``n`` says: the list is cut to the budget."""
    registry.pusher().push("acme/app", versions(30))
    with Registry(max_tags=10, page_size=5) as r:
        found = r.tags(f"{registry.host}/acme/app")
    assert len(found.tags) == 10 and found.truncated and found.pages == 1
    assert "budget of 10 tags" in found.warnings[0]


def test_a_link_to_another_host_is_not_followed(registry: RegistryServer) -> None:
    """Row "a Link header to another host": the list stops at the pages of the registry's own origin, with a
    warning naming the other origin; the other host never sees a request (or a token)."""
    registry.pusher().push("acme/app", versions(12))
    with front(registry.host) as other, front(registry.host, page=5, foreign_link=f"http://{other.host}") as f:
        with Registry(page_size=5) as r:
            found = r.tags(f"{f.host}/acme/app")
        assert len(found.tags) == 5 and found.truncated and found.pages == 1
        assert found.warnings == (
            f"{f.host}/acme/app: the registry's next page is on another host (http://{other.host}); not followed, "
            "the list stops at 5 tags",
        )
        assert other.seen == []


# -- the cache --------------------------------------------------------------------------------------------------------


def test_cache_serves_the_next_run_within_the_ttl(registry: RegistryServer, tmp_path: Path) -> None:
    """No ETag (distribution 2.8 gives none): a list younger than the TTL is served from the state dir, no request."""
    registry.pusher().push("acme/app", versions(3))
    state = tmp_path / "state"
    with front(registry.host) as f:
        with Registry(state_dir=state) as r:
            first = r.tags(f"{f.host}/acme/app")
        assert not first.from_cache and f.count("GET", "/tags/list") == 1
        with Registry(state_dir=state) as r:  # the next scheduled run
            second = r.tags(f"{f.host}/acme/app")
        assert second.from_cache and second.tags == first.tags and second.pages == 0
        assert f.count("GET", "/tags/list") == 1  # counted at the front: nothing reached the registry
        assert r.requests == {}
        with Registry(state_dir=state, cache_ttl=0) as r:  # expired: asked again
            assert not r.tags(f"{f.host}/acme/app").from_cache
        assert f.count("GET", "/tags/list") == 2
        with Registry(state_dir=state, max_tags=2) as r:  # another budget: the cached list does not answer
            assert not r.tags(f"{f.host}/acme/app").from_cache
    files = list((state / "registry" / "tags").iterdir())
    assert len(files) == 1 and json.loads(files[0].read_text())["repository"] == f"{f.host}/acme/app"


def test_cache_revalidates_with_the_etag(registry: RegistryServer, tmp_path: Path) -> None:
    """A registry that gives an ETag: every run asks with If-None-Match; a 304 is served from the cache, a new tag
    is seen at once."""
    pusher = registry.pusher()
    pusher.push("acme/app", versions(3))
    state = tmp_path / "state"
    with front(registry.host, etag=True) as f:
        with Registry(state_dir=state) as r:
            assert not r.tags(f"{f.host}/acme/app").from_cache
        with Registry(state_dir=state) as r:
            again = r.tags(f"{f.host}/acme/app")
        assert again.from_cache and sorted(again.tags) == versions(3)
        assert [s.status for s in f.seen] == [200, 304]
        pusher.push("acme/app", ["1.0.3"])
        with Registry(state_dir=state) as r:
            fresh = r.tags(f"{f.host}/acme/app")
        assert not fresh.from_cache and sorted(fresh.tags) == versions(4)


# -- rate limits, a registry that is down, parallel scans -----------------------------------------------------------


def test_429_with_retry_after_is_waited_out_and_the_rate_halves(registry: RegistryServer) -> None:
    """Row "a registry that answers 429 with Retry-After": the client waits the given second, then succeeds; the
    host's rate is halved for the rest of the run."""
    registry.pusher().push("acme/app", ["1"])
    answered = []

    def throttle(method: str, path: str, query: object) -> tuple[int, dict[str, str], bytes] | None:
        if path.endswith("/tags/list") and not answered:
            answered.append(time.monotonic())
            body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"rate limit exceeded"}]}'
            return 429, {"Retry-After": "1", "Content-Type": "application/json"}, body
        return None

    with front(registry.host, hook=throttle) as f, Registry(rate=40) as r:
        started = time.monotonic()
        found = r.tags(f"{f.host}/acme/app")
        assert found.tags == ("1",)
        retried = [s for s in f.seen if s.path.endswith("/tags/list")]
        assert [s.status for s in retried] == [429, 200]
        assert time.monotonic() - started >= 1.0
        assert r.rate(f.host) == 20


def test_429_past_the_bounded_retries_is_a_rate_limited_error(registry: RegistryServer) -> None:
    def always(method: str, path: str, query: object) -> tuple[int, dict[str, str], bytes]:
        return 429, {"Retry-After": "0"}, b""

    sleeps: list[float] = []
    with front(registry.host, hook=always) as f, Registry(retries=2, sleep=sleeps.append) as r, \
            pytest.raises(RegistryError) as e:  # fmt: skip
        r.tags(f"{f.host}/acme/app")
    assert e.value.failure is Failure.RATE_LIMITED and e.value.status == 429
    assert len(f.seen) == 3  # the first answer and two retries
    assert "still refused after 2 waits" in str(e.value)
    with front(registry.host, hook=lambda *_: (429, {"Retry-After": "3600"}, b"")) as f, Registry() as r:
        with pytest.raises(RegistryError) as e:
            r.tags(f"{f.host}/acme/app")  # longer than max_wait: not waited for
        assert len(f.seen) == 1 and "Retry-After: 3600" in str(e.value)


def test_a_registry_that_is_down_fails_fast_and_typed(tmp_path: Path) -> None:
    """Row "a registry that is down": a typed UNREACHABLE error per repository, at once; once the host is known to
    be down, every later request to it fails without a connection attempt."""
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    with Registry() as r:
        started = time.monotonic()
        results = r.scan([f"{host}/a/one", f"{host}/a/two", f"{host}/a/three"])
        assert time.monotonic() - started < 2
    assert len(results) == 3 and all(isinstance(v, RegistryError) for v in results.values())
    for ref, error in results.items():
        assert isinstance(error, RegistryError) and error.failure is Failure.UNREACHABLE
        assert str(error).startswith(f"images: {ref.name}: cannot reach http://{host}: connection refused")
        assert "stale" in str(error)
    assert 1 <= r.requests["GET registry"] <= 3  # the requests in flight before the first failure came back
    asked = r.requests["GET registry"]
    with pytest.raises(RegistryError) as e:
        r.tags(f"{host}/a/four")
    assert e.value.failure is Failure.UNREACHABLE and r.requests["GET registry"] == asked  # known down: not asked


def test_a_registry_that_never_answers_times_out_typed() -> None:
    """A host that accepts the connection and says nothing: the read timeout ends it, as the same typed error."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        host = f"127.0.0.1:{silent.getsockname()[1]}"
        with Registry(read_timeout=0.5) as r, pytest.raises(RegistryError) as e:
            started = time.monotonic()
            r.tags(f"{host}/a/app")
        assert time.monotonic() - started < 5
    assert e.value.failure is Failure.UNREACHABLE
    assert str(e.value) == (f"images: {host}/a/app: cannot reach http://{host}: timed out; the images of its "
                            "repositories are stale this run")  # fmt: skip


def test_an_answer_past_the_size_cap_is_refused(registry: RegistryServer) -> None:
    huge = b'{"tags": ["' + b"x" * (MAX_BODY + 10) + b'"]}'
    answer = (200, {"Content-Type": "application/json"}, huge)
    with front(registry.host, hook=lambda *_: answer) as f, Registry() as r, pytest.raises(RegistryError) as e:
        r.tags(f"{f.host}/acme/app")
    assert e.value.failure is Failure.PROTOCOL and "answered more than 16 MiB; refused" in str(e.value)


def test_scan_lists_many_repositories_in_parallel(registry: RegistryServer) -> None:
    repos = {f"team/app{i}": versions(i + 1) for i in range(6)}
    registry.pusher().push_many(repos)
    with Registry(workers=4) as r:
        arrived = list(r.scan_each([f"{registry.host}/{name}" for name in repos] + [f"{registry.host}/team/missing"]))
    results = dict(arrived)
    assert len(arrived) == len(results) == 7
    for name, tags in repos.items():
        found = results[ImageRef(registry.host, name)]
        assert not isinstance(found, RegistryError) and sorted(found.tags) == sorted(tags)
    missing = results[ImageRef(registry.host, "team/missing")]
    assert isinstance(missing, RegistryError) and missing.failure is Failure.NOT_FOUND


# -- wrong passwords: a clear 401, no secret anywhere ------------------------------------------------------------------

_PROBE = """
import json, logging, sys, traceback
from pathlib import Path
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)  # docker's and urllib3's debug lines too
from gitops_job.registry import Credentials, Registry, RegistryError
creds = Credentials.docker_config(Path(sys.argv[1]))
registry = Registry(creds)
print(repr(creds), repr(registry), repr(creds.for_host(sys.argv[2].split("/")[0])), file=sys.stderr)
try:
    registry.tags(sys.argv[2])
except RegistryError as e:
    traceback.print_exc()
    print(''.join(traceback.TracebackException.from_exception(e, capture_locals=True).format()), file=sys.stderr)
    print(e)
    sys.exit(1)
"""


@pytest.mark.parametrize("auth", ["htpasswd", "token"])
def test_wrong_password_is_a_clear_401_that_names_the_registry_and_shows_no_secret(
    auth: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Row "a credentials file with a wrong password": the message names the registry and the user, says what to
    do; the password, its base64 and the token never appear in stdout, stderr (debug logging on, a traceback with
    its locals) or the error's str and repr."""
    server: RegistryServer = request.getfixturevalue(f"registry_{auth}")
    server.pusher().push("team/app", ["1"])
    wrong = "Wr0ng-planted-PASSWORD"
    config = tmp_path / "config.json"
    config.write_text(json.dumps(config_for(server.host, password=wrong)))
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(config), f"{server.host}/team/app"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    message = proc.stdout.strip()
    assert message.startswith(f"images: {server.host}/team/app: ")
    assert "401" in message and str(config) in message and "alice" in message
    assert "check the username and password" in message
    planted = [wrong, base64.b64encode(f"alice:{wrong}".encode()).decode(), base64.b64encode(wrong.encode()).decode()]
    for secret in planted:
        assert secret not in proc.stdout and secret not in proc.stderr
    assert "Traceback" in proc.stderr  # the traceback with locals was printed, and holds none of it

    with Registry(Credentials.docker_config(config)) as r, pytest.raises(RegistryError) as e:
        r.tags(f"{server.host}/team/app")
    shown = [str(e.value), repr(e.value), repr(r), repr(r.credentials), repr(r.credentials.for_host(server.host)),
             "".join(traceback.TracebackException(type(e.value), e.value, e.value.__traceback__.tb_next,
                                                  capture_locals=True).format())]  # fmt: skip  # ours, not this test's
    for secret in planted:
        assert not any(secret in s for s in shown)


def test_front_counts_every_request(registry: RegistryServer) -> None:
    """The harness itself: the front end relays and counts (what the cache and digest tests rely on)."""
    registry.pusher().push("acme/app", ["1"])
    with front(registry.host) as f:
        assert isinstance(f, Front)
        with Registry() as r:
            r.tags(f"{f.host}/acme/app")
            r.digest(f"{f.host}/acme/app", "1")
        assert f.count("GET", "/tags/list") == 1 and f.count("HEAD", "/manifests/1") == 1
