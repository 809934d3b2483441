//! Workers and processes: timely's own flags (`-w/--threads`, `-n/--processes`, `-p/--process`,
//! `-h/--hostfile`), parsed by [`ClusterArgs`] so that they can sit beside a job's own flags
//! (timely's getopts parser rejects unknown flags), checked into a [`Cluster`], and the timely
//! `Config` built from it.

use std::path::{Path, PathBuf};

use crate::error::{Result, SluiceError};

/// Timely's worker flags: `-w/--threads`, `-n/--processes`, `-p/--process`, `-h/--hostfile`.
///
/// A command line fills it (the `sluice` binary with clap, [`ClusterArgs::parse`] by hand);
/// [`ClusterArgs::to_cluster`] checks it.
///
/// # Examples
///
/// ```
/// let args = sluice::ClusterArgs::parse(["-w", "2"])?;
/// assert_eq!(args.threads, 2);
/// assert!(sluice::ClusterArgs::parse(["--bogus"]).is_err());
/// # Ok::<(), sluice::SluiceError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterArgs {
    /// Worker threads per process (timely's -w).
    pub threads: usize,
    /// Number of processes in the job (timely's -n).
    pub processes: usize,
    /// Index of this process, 0..processes (timely's -p).
    pub process: usize,
    /// File with one host:port per line, in process order (timely's -h); default localhost:2101+i.
    pub hostfile: Option<PathBuf>,
}

impl Default for ClusterArgs {
    fn default() -> Self {
        ClusterArgs {
            threads: 1,
            processes: 1,
            process: 0,
            hostfile: None,
        }
    }
}

const WORKER_FLAGS: &str =
    "use timely's flags: -w/--threads N, -n/--processes N, -p/--process I, -h/--hostfile FILE";

impl ClusterArgs {
    /// Parses timely's worker flags (`-w 2`, `--threads=2`, `-n 2 -p 0 -h hosts.txt`); any
    /// other argument is an error that names it.
    pub fn parse<I, S>(args: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut parsed = ClusterArgs::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let arg = arg.as_ref();
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
                _ => (arg, None),
            };
            let mut value = || -> Result<String> {
                inline
                    .clone()
                    .or_else(|| args.next().map(|v| v.as_ref().to_owned()))
                    .ok_or_else(|| SluiceError::InvalidConfig {
                        problem: format!("{flag} needs a value"),
                        fix: WORKER_FLAGS.into(),
                    })
            };
            let number = |flag: &str, v: String| -> Result<usize> {
                v.parse().map_err(|_| SluiceError::InvalidConfig {
                    problem: format!("{flag} `{v}` is not a whole number"),
                    fix: WORKER_FLAGS.into(),
                })
            };
            match flag {
                "-w" | "--threads" => parsed.threads = number(flag, value()?)?,
                "-n" | "--processes" => parsed.processes = number(flag, value()?)?,
                "-p" | "--process" => parsed.process = number(flag, value()?)?,
                "-h" | "--hostfile" => parsed.hostfile = Some(PathBuf::from(value()?)),
                other => {
                    return Err(SluiceError::InvalidConfig {
                        problem: format!("`{other}` is not a worker flag"),
                        fix: WORKER_FLAGS.into(),
                    });
                }
            }
        }
        Ok(parsed)
    }

    /// Checks the flags and turns them into a [`Cluster`].
    ///
    /// # Examples
    ///
    /// ```
    /// let args = sluice::ClusterArgs { threads: 2, processes: 1, process: 0, hostfile: None };
    /// assert_eq!(args.to_cluster().unwrap().peers(), 2);
    /// let bad = sluice::ClusterArgs { threads: 1, processes: 2, process: 2, hostfile: None };
    /// assert!(bad.to_cluster().is_err());
    /// ```
    pub fn to_cluster(&self) -> Result<Cluster> {
        if self.threads == 0 {
            return Err(SluiceError::InvalidConfig {
                problem: "-w/--threads is 0".into(),
                fix: "give at least 1 worker thread per process".into(),
            });
        }
        if self.processes == 0 {
            return Err(SluiceError::InvalidConfig {
                problem: "-n/--processes is 0".into(),
                fix: "give at least 1 process".into(),
            });
        }
        if self.process >= self.processes {
            return Err(SluiceError::InvalidConfig {
                problem: format!(
                    "-p/--process is {} but there are only {} processes",
                    self.process, self.processes
                ),
                fix: format!("use a process index from 0 to {}", self.processes - 1),
            });
        }
        let addresses = if self.processes > 1 {
            match &self.hostfile {
                Some(path) => read_hostfile(path, self.processes)?,
                None => (0..self.processes)
                    .map(|i| format!("localhost:{}", 2101 + i))
                    .collect(),
            }
        } else {
            Vec::new()
        };
        Ok(Cluster {
            threads: self.threads,
            processes: self.processes,
            process: self.process,
            addresses,
        })
    }
}

fn read_hostfile(path: &PathBuf, processes: usize) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| SluiceError::Hostfile {
        path: path.clone(),
        problem: e.to_string(),
        processes,
    })?;
    parse_hostfile(path, &text, processes)
}

/// The first `processes` address lines of a hostfile's text (`path` for errors): blank lines
/// and `#` comments are skipped; each address must be `host:port`.
pub(crate) fn parse_hostfile(path: &Path, text: &str, processes: usize) -> Result<Vec<String>> {
    let path = &path.to_path_buf();
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .take(processes)
        .map(str::to_owned)
        .collect();
    if lines.len() < processes {
        return Err(SluiceError::Hostfile {
            path: path.clone(),
            problem: format!("it has {} address lines", lines.len()),
            processes,
        });
    }
    if let Some(bad) = lines.iter().find(|l| {
        l.rsplit_once(':')
            .is_none_or(|(_, p)| p.parse::<u16>().is_err())
    }) {
        return Err(SluiceError::Hostfile {
            path: path.clone(),
            problem: format!("`{bad}` is not host:port"),
            processes,
        });
    }
    Ok(lines)
}

/// Where the workers run: threads per process, processes, this process's index, addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// Worker threads per process.
    pub threads: usize,
    /// Number of processes.
    pub processes: usize,
    /// This process's index.
    pub process: usize,
    /// `host:port` of every process (empty for one process).
    pub addresses: Vec<String>,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            threads: 1,
            processes: 1,
            process: 0,
            addresses: Vec::new(),
        }
    }
}

impl Cluster {
    /// All workers of all processes.
    pub fn peers(&self) -> usize {
        self.threads * self.processes
    }

    /// Checks that this process can listen on its own address of the hostfile: another
    /// process on that port would otherwise be found only after timely's connection attempts,
    /// with an error that names neither the address nor the fix.
    pub(crate) fn check_own_address(&self) -> Result<()> {
        if self.processes <= 1 {
            return Ok(());
        }
        let Some(address) = self.addresses.get(self.process) else {
            return Ok(());
        };
        match std::net::TcpListener::bind(address.as_str()) {
            Ok(listener) => {
                drop(listener);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(SluiceError::InvalidConfig {
                problem: format!(
                    "process {} cannot listen on {address} (line {} of the hostfile): the address is in use",
                    self.process,
                    self.process + 1
                ),
                fix: "stop what listens there (an earlier run of this job?), or give this process another port in the hostfile".into(),
            }),
            Err(e) => Err(SluiceError::InvalidConfig {
                problem: format!(
                    "process {} cannot listen on {address} (line {} of the hostfile): {e}",
                    self.process,
                    self.process + 1
                ),
                fix: "give this process an address of this machine in the hostfile".into(),
            }),
        }
    }

    pub(crate) fn timely_config(&self) -> timely::Config {
        use timely::CommunicationConfig;
        let communication = if self.processes > 1 {
            CommunicationConfig::Cluster {
                threads: self.threads,
                process: self.process,
                addresses: self.addresses.clone(),
                report: false,
                zerocopy: false,
            }
        } else if self.threads > 1 {
            CommunicationConfig::Process(self.threads)
        } else {
            CommunicationConfig::Thread
        };
        let mut config = timely::Config {
            communication,
            worker: timely::WorkerConfig::default(),
        };
        differential_dataflow::configure(
            &mut config.worker,
            &differential_dataflow::Config::default().idle_merge_effort(Some(1000)),
        );
        config
    }
}
