//! A local server run as a process of its own for a benchmark: the bench
//! binary again, with a hidden `--serve-*` flag. Its memory then does not
//! count in the measured process's peak (a forked child starts with its
//! parent's pages), and it does not share the measured process's cores'
//! scheduling with the benchmark's own threads.

use anyhow::{anyhow, Result};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The server process; killed when dropped.
pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`, as the server printed it.
    pub base: String,
}

impl ServerProcess {
    /// Starts `muninn-sync-bench <flag> <n>` and reads the address it prints.
    pub fn start(flag: &str, n: u64) -> Result<ServerProcess> {
        let mut command = Command::new(std::env::current_exe()?);
        command.args([flag, &n.to_string()]);
        ServerProcess::spawn(command, &format!("the {flag} server"))
    }

    /// Starts `command`, a server that prints its `http://` address as its
    /// first line, and reads that address; `what` names it in the error.
    pub fn spawn(mut command: Command, what: &str) -> Result<ServerProcess> {
        let mut child = command.stdout(Stdio::piped()).spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("{what}: no output"))?;
        let mut server = ServerProcess {
            child,
            base: String::new(),
        };
        BufReader::new(stdout).read_line(&mut server.base)?;
        server.base = server.base.trim().to_string();
        if !server.base.starts_with("http") {
            return Err(anyhow!(
                "{what} did not start: it printed no address (see its messages above)"
            ));
        }
        Ok(server)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
