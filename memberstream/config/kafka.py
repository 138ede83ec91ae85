"""Kafka connection security: one settings section, turned into the arguments of
every client the project makes (Faust's app, aiokafka producers, consumers and
admin clients).

Secrets (the SASL password, the key file's password) are ``SecretStr``: they
print as ``**********`` in the settings dump and in logs, and are unwrapped only
here, when a client is built. Set them by env var
(``MEMBERSTREAM_KAFKA__SASL_PASSWORD``), in the TOML file, or point
``sasl_password_file`` at a file that holds the password (a mounted secret).

Plain pydantic and :mod:`ssl`, part of the settings assembly; Faust is imported
only inside :meth:`KafkaSecuritySettings.faust_credentials`, when the worker builds
its app (:mod:`memberstream.streams.app`).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSecuritySettings(BaseModel):
    """How clients authenticate to Kafka and encrypt the connection."""

    model_config = ConfigDict(extra="forbid")

    security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    sasl_mechanism: SaslMechanism = Field(
        "SCRAM-SHA-512", description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* protocols)"
    )
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = Field(
        None, description="file holding the SASL password (instead of sasl_password)"
    )
    ssl_cafile: Path | None = Field(
        None, description="CA bundle (PEM) that signed the brokers' certificates"
    )
    ssl_certfile: Path | None = Field(None, description="client certificate (PEM), for mTLS")
    ssl_keyfile: Path | None = Field(None, description="client private key (PEM), for mTLS")
    ssl_key_password: SecretStr | None = None
    ssl_check_hostname: bool = Field(
        True, description="verify that the broker's certificate names the host connected to"
    )

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecuritySettings:
        if self.uses_sasl and not self.sasl_username:
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_username")
        if self.uses_sasl and self.sasl_password is None and self.sasl_password_file is None:
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_password "
                "or sasl_password_file"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together (client certificate)")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "sasl_password_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name}: no such file: {path}")
        return self

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def password(self) -> str | None:
        """The SASL password, from the setting or the file named by ``sasl_password_file``."""
        if self.sasl_password is not None:
            return self.sasl_password.get_secret_value()
        if self.sasl_password_file is not None:
            return Path(self.sasl_password_file).read_text(encoding="utf-8").strip()
        return None

    def ssl_context(self) -> ssl.SSLContext | None:
        """A TLS context for the SSL protocols (None for the plaintext ones)."""
        if not self.uses_ssl:
            return None
        context = ssl.create_default_context(
            cafile=None if self.ssl_cafile is None else str(self.ssl_cafile)
        )
        context.check_hostname = self.ssl_check_hostname
        if not self.ssl_check_hostname:
            # without a name to check, the chain is still verified against the CA
            context.verify_mode = ssl.CERT_REQUIRED
        if self.ssl_certfile is not None:
            context.load_cert_chain(
                str(self.ssl_certfile),
                str(self.ssl_keyfile),
                None if self.ssl_key_password is None else self.ssl_key_password.get_secret_value(),
            )
        return context

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
        kwargs: dict[str, Any] = {"security_protocol": self.security_protocol}
        context = self.ssl_context()
        if context is not None:
            kwargs["ssl_context"] = context
        if self.uses_sasl:
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.password(),
            )
        return kwargs

    def faust_credentials(self) -> Any:
        """``broker_credentials`` for a Faust app (None for PLAINTEXT)."""
        import faust

        context = self.ssl_context()
        if self.uses_sasl:
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=self.password(),
                ssl_context=context,
                mechanism=self.sasl_mechanism,
            )
        if context is not None:
            return faust.SSLCredentials(context)
        return None
