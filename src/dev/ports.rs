//! Port choice for process mode: kind-config.yaml's localhost ports by default, so an app's
//! settings read the same as against a kind cluster; a busy default moves to a free port
//! (and the output says so); a port the user fixed never moves.

use std::net::{Ipv4Addr, TcpListener};

/// How one service's port was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortChoice {
    pub port: u16,
    /// The default it moved from because that one was busy.
    pub moved_from: Option<u16>,
}

/// Why no port could be chosen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error(
        "port {port} ({flag}) is in use: free it, or leave out {flag} to let parity dev pick a free port"
    )]
    FixedBusy { port: u16, flag: &'static str },
    #[error("no free loopback port for {flag}")]
    NoneFree { flag: &'static str },
}

/// Chooses a port. Pure: `is_free` and `any_free` are the probes.
pub fn choose(
    default: u16,
    fixed: Option<u16>,
    flag: &'static str,
    taken: &[u16],
    is_free: impl Fn(u16) -> bool,
    mut any_free: impl FnMut() -> Option<u16>,
) -> Result<PortChoice, PortError> {
    if let Some(port) = fixed {
        return if is_free(port) {
            Ok(PortChoice {
                port,
                moved_from: None,
            })
        } else {
            Err(PortError::FixedBusy { port, flag })
        };
    }
    if !taken.contains(&default) && is_free(default) {
        return Ok(PortChoice {
            port: default,
            moved_from: None,
        });
    }
    // The kernel's ephemeral ports; a few tries in case one collides with a sibling's.
    for _ in 0..16 {
        match any_free() {
            Some(p) if !taken.contains(&p) => {
                return Ok(PortChoice {
                    port: p,
                    moved_from: Some(default),
                });
            }
            Some(_) => continue,
            None => break,
        }
    }
    Err(PortError::NoneFree { flag })
}

/// Whether 127.0.0.1:`port` can be bound now.
pub fn loopback_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A port the kernel says is free now.
pub fn any_loopback_port() -> Option<u16> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_when_free_moved_when_busy_fixed_never_moves() {
        let free = |p: u16| p != 8000;
        let mut next = [40001u16, 40002].into_iter();
        let c = choose(8080, None, "--dashboard-port", &[], free, || next.next()).unwrap();
        assert_eq!(
            c,
            PortChoice {
                port: 8080,
                moved_from: None
            }
        );
        let c = choose(8000, None, "--dynamodb-port", &[], free, || next.next()).unwrap();
        assert_eq!(
            c,
            PortChoice {
                port: 40001,
                moved_from: Some(8000)
            }
        );
        let e = choose(8000, Some(8000), "--dynamodb-port", &[], free, || None).unwrap_err();
        assert_eq!(
            e,
            PortError::FixedBusy {
                port: 8000,
                flag: "--dynamodb-port"
            }
        );
        assert!(e.to_string().contains("leave out --dynamodb-port"));
        let c = choose(8000, Some(9000), "--dynamodb-port", &[], free, || None).unwrap();
        assert_eq!(c.port, 9000);
    }

    #[test]
    fn siblings_never_share_a_port() {
        // The default is free but already given to another service; the next free one is
        // too, so the one after it is taken.
        let mut next = [8080u16, 40005].into_iter();
        let c = choose(8080, None, "--kms-port", &[8080], |_| true, || next.next()).unwrap();
        assert_eq!(
            c,
            PortChoice {
                port: 40005,
                moved_from: Some(8080)
            }
        );
        let e = choose(1, None, "--kms-port", &[1], |_| false, || None).unwrap_err();
        assert_eq!(e, PortError::NoneFree { flag: "--kms-port" });
    }

    #[test]
    fn probes_see_a_bound_port() {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(!loopback_free(port));
        drop(l);
        assert!(any_loopback_port().is_some());
    }
}
