"""Who each stage is to the cluster, for the ACLs ``ubridge acl plan|apply`` grant (section ``acl``).

Example (SASL user names; the principal is ``User:<name>``)::

    acl:
      default: ubridge-stages          # every stage not named below
      stages: {router: ubridge-router, gonggai-interface: ubridge-source}
      utilities: {yantai-water: yantai-water}   # its sink's principal, and what the utility reads with

A deployment that wants each stage to hold only its own rights runs each stage in its own process
(``ubridge run --stage NAME``) with that principal's credentials in ``kafka.security.sasl``.
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# a SASL user name as it appears in a principal: anything but whitespace and the separators of ACL tooling
PrincipalName = Annotated[str, Field(pattern=r"^[^\s:,;*]{1,255}$")]


class AclSettings(BaseModel):
    """Stage and utility → the principal its ACLs are granted to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: PrincipalName | None = Field(None, description="The principal of every stage not named in stages.")
    stages: dict[str, PrincipalName] = {}
    utilities: dict[str, PrincipalName] = Field(
        {}, description="A utility's principal: its sink runs as it, and it may read only its own task topic."
    )
