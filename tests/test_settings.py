"""Loading and validating the node configuration."""

from __future__ import annotations

import pytest

from xnode.settings import (
    SettingsError,
    env_overrides,
    load_settings,
    parse_listen,
    render_config,
    settings_from_mapping,
)


def write_node(tmp_path, config: str):
    (tmp_path / "xnode.toml").write_text(config)
    (tmp_path / "secret.key").write_text("ab" * 32)
    return tmp_path


def test_loads_file_and_derives_base_url(tmp_path):
    node = write_node(tmp_path, 'domain = "example.org"\nregistration = "invite"\n')
    settings = load_settings(node, environ={})
    assert settings.domain == "example.org"
    assert settings.base_url == "https://example.org"
    assert settings.registration == "invite"
    assert settings.https
    assert settings.secret_key == bytes.fromhex("ab" * 32)


def test_unknown_key_is_an_error(tmp_path):
    node = write_node(tmp_path, 'domain = "example.org"\nregistation = "open"\n')
    with pytest.raises(SettingsError, match=r"unknown setting.*registation"):
        load_settings(node, environ={})


def test_wrong_types_and_values_are_errors(tmp_path):
    cases = {
        'domain = "x.org"\nmax_upload_mb = "8"': "max_upload_mb",
        'domain = "x.org"\nmax_upload_mb = true': "max_upload_mb",
        'domain = "x.org"\nregistration = "sometimes"': "registration",
        'domain = "x.org"\nlisten = "nowhere"': "listen",
        'domain = "x.org"\nbase_url = "ftp://x.org"': "base_url",
        'domain = "x.org"\ntls_cert = "a.pem"': "tls_cert and tls_key",
        'domain = "x.org"\ndelivery_processes = 17': "delivery_processes: expected 0 to 16",
        'domain = "x.org"\ndelivery_processes = -1': "delivery_processes: expected 0 to 16",
        'domain = "x.org"\ndelivery_processes = true': "delivery_processes",
        'domain = "x.org/path"': "domain",
        "registration = 'open'": "domain",
        "domain = ": "invalid TOML",
    }
    for config, message in cases.items():
        node = write_node(tmp_path, config)
        with pytest.raises(SettingsError, match=message):
            load_settings(node, environ={})


def test_environment_overrides_the_file(tmp_path):
    node = write_node(tmp_path, 'domain = "example.org"\n')
    settings = load_settings(
        node,
        environ={
            "XNODE_REGISTRATION": "closed",
            "XNODE_MAX_UPLOAD_MB": "3",
            "XNODE_ALLOW_PRIVATE_ADDRESSES": "yes",
            "XNODE_DATA": "/ignored/by/settings",
            "HOME": "/root",
        },
    )
    assert settings.registration == "closed"
    assert settings.max_upload_mb == 3
    assert settings.allow_private_addresses is True


def test_unknown_or_malformed_environment_values_are_errors():
    with pytest.raises(SettingsError, match="XNODE_REGISTATION"):
        env_overrides({"XNODE_REGISTATION": "open"})
    with pytest.raises(SettingsError, match="true or false"):
        env_overrides({"XNODE_ALLOW_PRIVATE_ADDRESSES": "maybe"})
    with pytest.raises(SettingsError, match="number"):
        env_overrides({"XNODE_MAX_UPLOAD_MB": "lots"})


def test_missing_node_or_secret(tmp_path):
    with pytest.raises(SettingsError, match="xnode init"):
        load_settings(tmp_path, environ={})
    (tmp_path / "xnode.toml").write_text('domain = "example.org"\n')
    with pytest.raises(SettingsError, match="secret"):
        load_settings(tmp_path, environ={})


def test_rendered_config_round_trips(tmp_path):
    values = {"domain": "a.example", "base_url": 'http://a.example:8080', "listen": "[::1]:8080",
              "registration": "open", "max_upload_mb": 4, "allow_private_addresses": True}
    node = write_node(tmp_path, render_config(values))
    settings = load_settings(node, environ={})
    assert settings == settings_from_mapping(settings.data_dir, values, settings.secret_key)
    assert parse_listen(settings.listen) == ("::1", 8080)
