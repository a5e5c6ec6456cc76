//! Roles and what each may do. Pure: no I/O, no state.
//!
//! Four roles, ordered by privilege; each allows everything the one below it allows, plus its own
//! permissions. The table is [`Role::allows`]; [`Permission::minimum_role`] is its other reading.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A user's or a token's role. `Viewer < Operator < Engineer < Admin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads tags, assets, alarms, sources and metrics.
    Viewer,
    /// A viewer who also acknowledges and shelves alarms, writes to equipment and injects
    /// simulator faults.
    Operator,
    /// An operator who also changes configuration and detectors (asks them to learn again) and
    /// writes data over HTTP.
    Engineer,
    /// An engineer who also manages users, tokens and certificates and reads the audit trail.
    Admin,
}

/// Something a principal may be allowed to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Read tags, assets, alarms, sources, detectors, metrics.
    Read,
    AcknowledgeAlarm,
    ShelveAlarm,
    /// Write a value to equipment (a Modbus register, an OPC UA node).
    WriteEquipment,
    /// Inject or clear faults in the demo simulator.
    InjectFault,
    ChangeConfig,
    /// Change detectors, ask them to learn again.
    ChangeDetectors,
    /// Write data into the historian over HTTP (line protocol), creating tags.
    WriteData,
    ManageUsers,
    ManageTokens,
    ManageCertificates,
    ReadAudit,
}

impl Permission {
    pub const ALL: [Permission; 12] = [
        Permission::Read,
        Permission::AcknowledgeAlarm,
        Permission::ShelveAlarm,
        Permission::WriteEquipment,
        Permission::InjectFault,
        Permission::ChangeConfig,
        Permission::ChangeDetectors,
        Permission::WriteData,
        Permission::ManageUsers,
        Permission::ManageTokens,
        Permission::ManageCertificates,
        Permission::ReadAudit,
    ];

    /// The least privileged role that holds this permission.
    pub const fn minimum_role(self) -> Role {
        match self {
            Permission::Read => Role::Viewer,
            Permission::AcknowledgeAlarm
            | Permission::ShelveAlarm
            | Permission::WriteEquipment
            | Permission::InjectFault => Role::Operator,
            Permission::ChangeConfig | Permission::ChangeDetectors | Permission::WriteData => {
                Role::Engineer
            }
            Permission::ManageUsers
            | Permission::ManageTokens
            | Permission::ManageCertificates
            | Permission::ReadAudit => Role::Admin,
        }
    }
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Engineer, Role::Admin];

    /// Whether this role may do `p`.
    pub fn allows(self, p: Permission) -> bool {
        self >= p.minimum_role()
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Engineer => "engineer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of `viewer`, `operator`, `engineer`, `admin`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (expected one of: viewer, operator, engineer, admin)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission as P;

    /// The whole table, written out: (permission, viewer, operator, engineer, admin).
    const TABLE: [(Permission, [bool; 4]); 12] = [
        (P::Read, [true, true, true, true]),
        (P::AcknowledgeAlarm, [false, true, true, true]),
        (P::ShelveAlarm, [false, true, true, true]),
        (P::WriteEquipment, [false, true, true, true]),
        (P::InjectFault, [false, true, true, true]),
        (P::ChangeConfig, [false, false, true, true]),
        (P::ChangeDetectors, [false, false, true, true]),
        (P::WriteData, [false, false, true, true]),
        (P::ManageUsers, [false, false, false, true]),
        (P::ManageTokens, [false, false, false, true]),
        (P::ManageCertificates, [false, false, false, true]),
        (P::ReadAudit, [false, false, false, true]),
    ];

    #[test]
    fn the_permission_table() {
        for (p, row) in TABLE {
            for (role, want) in Role::ALL.into_iter().zip(row) {
                assert_eq!(role.allows(p), want, "{role} {p:?}");
            }
        }
        // Every permission is in the table exactly once.
        for p in Permission::ALL {
            assert_eq!(TABLE.iter().filter(|(q, _)| *q == p).count(), 1, "{p:?}");
        }
    }

    #[test]
    fn roles_are_ordered_by_privilege_and_monotone() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Engineer);
        assert!(Role::Engineer < Role::Admin);
        for p in Permission::ALL {
            for w in Role::ALL.windows(2) {
                assert!(
                    !w[0].allows(p) || w[1].allows(p),
                    "{p:?}: {} > {}",
                    w[0],
                    w[1]
                );
            }
        }
    }

    #[test]
    fn role_names_round_trip_and_unknown_is_explained() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
        }
        let e = "Admin".parse::<Role>().unwrap_err().to_string();
        assert!(
            e.contains("\"Admin\"") && e.contains("viewer, operator"),
            "{e}"
        );
    }
}
