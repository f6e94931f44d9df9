//! memcached's command-line flags, parsed as memcached 1.6 parses them.
//!
//! Supported: `-p/--port`, `-U/--udp-port`, `-l/--listen`, `-t/--threads`,
//! `-m/--memory-limit`, `-c/--conn-limit`, `-I/--max-item-size`,
//! `-R/--max-reqs-per-event`, `-v/--verbose` (repeatable, `-vv`), `-u/--user`
//! (accepted and recorded; the server does not change user), `-h/--help` and
//! `-V/--version`. Values are read with C's `atoi`, as memcached reads them: `-m 64m`
//! is 64 MiB and `-t 2x` is 2 threads. `-I` takes a `k`/`m` suffix (`-I 2m`). The
//! checks memcached makes, with its messages, are made too.
//!
//! ```
//! use evloop_memcache_engine::config::{parse_args, Command};
//! let Command::Run(c) = parse_args(["-p", "11311", "-m", "128", "-t1", "-I", "2m", "-vv"]).unwrap() else { panic!() };
//! assert_eq!((c.port, c.memory_limit_mb, c.threads, c.item_size_max, c.verbose), (11311, 128, 1, 2 << 20, 2));
//! assert!(parse_args(["-t", "0"]).is_err());
//! ```

use std::fmt;

use crate::cnum::atoi;
use crate::store::{StoreConfig, DEFAULT_ITEM_SIZE_MAX};

/// memcached's default slab chunk size limit: `-I` may not be smaller.
const SLAB_CHUNK_SIZE_MAX: usize = 512 * 1024;
/// `-I` may not exceed a gigabyte.
const ITEM_SIZE_MAX_UPPER_LIMIT: usize = 1024 * 1024 * 1024;
/// `-I` may not be below 1 KiB.
const ITEM_SIZE_MAX_LOWER_LIMIT: usize = 1024;

/// The server's settings, memcached's defaults unless given.
///
/// ```
/// use evloop_memcache_engine::config::Config;
/// let c = Config::default();
/// assert_eq!((c.port, c.threads, c.memory_limit_mb, c.max_connections), (11211, 4, 64, 1024));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// TCP port (`-p`, default 11211). 0 disables TCP, as in memcached.
    pub port: u16,
    /// UDP port (`-U`, default 0: off).
    pub udp_port: u16,
    /// Interfaces to listen on (`-l`, comma-separated, repeatable; each may carry a
    /// `:port`). Empty means all interfaces.
    pub listen: Vec<String>,
    /// Worker threads (`-t`, default 4).
    pub threads: u32,
    /// Memory limit for items in MiB (`-m`, default 64).
    pub memory_limit_mb: u64,
    /// Maximum simultaneous connections (`-c`, default 1024).
    pub max_connections: u32,
    /// Largest item in bytes (`-I`, default 1 MiB), counted as
    /// [`Store::item_size`](crate::store::Store::item_size) counts.
    pub item_size_max: usize,
    /// Requests processed per connection before yielding (`-R`, default 20).
    pub reqs_per_event: u32,
    /// Verbosity (`-v` counts; `-vv` is 2).
    pub verbose: u32,
    /// `-u`: the user memcached would switch to. Recorded, not acted on.
    pub user: Option<String>,
    /// `-A`: the `shutdown` command is allowed (memcached's `shutdown_command`).
    pub enable_shutdown: bool,
}

impl Default for Config {
    /// memcached's defaults.
    ///
    /// ```
    /// use evloop_memcache_engine::config::Config;
    /// assert_eq!(Config::default().item_size_max, 1 << 20);
    /// ```
    fn default() -> Self {
        Config {
            port: 11211,
            udp_port: 0,
            listen: Vec::new(),
            threads: 4,
            memory_limit_mb: 64,
            max_connections: 1024,
            item_size_max: DEFAULT_ITEM_SIZE_MAX,
            reqs_per_event: 20,
            verbose: 0,
            user: None,
            enable_shutdown: false,
        }
    }
}

impl Config {
    /// The memory limit in bytes.
    ///
    /// ```
    /// use evloop_memcache_engine::config::Config;
    /// assert_eq!(Config::default().memory_limit_bytes(), 64 << 20);
    /// ```
    pub fn memory_limit_bytes(&self) -> u64 {
        self.memory_limit_mb * 1024 * 1024
    }

    /// The store's limits from these settings.
    ///
    /// ```
    /// use evloop_memcache_engine::config::Config;
    /// use evloop_memcache_engine::store::StoreConfig;
    /// assert_eq!(Config::default().store_config(), StoreConfig::default());
    /// ```
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            memory_limit: self.memory_limit_bytes(),
            item_size_max: self.item_size_max,
        }
    }
}

/// What the command line asks for.
///
/// ```
/// use evloop_memcache_engine::config::{parse_args, Command};
/// assert_eq!(parse_args(["-V"]).unwrap(), Command::Version);
/// assert_eq!(parse_args(["--help"]).unwrap(), Command::Help);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the server with this configuration.
    Run(Config),
    /// Print [`usage`] and exit (`-h`).
    Help,
    /// Print the version and exit (`-V`).
    Version,
}

/// A command line memcached would refuse, with memcached's message.
///
/// ```
/// use evloop_memcache_engine::config::parse_args;
/// let e = parse_args(["-I", "512"]).unwrap_err();
/// assert_eq!(e.to_string(), "Item max size cannot be less than 1024 bytes.");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    fn new(message: impl Into<String>) -> ConfigError {
        ConfigError {
            message: message.into(),
        }
    }

    /// The message.
    ///
    /// ```
    /// use evloop_memcache_engine::config::parse_args;
    /// assert_eq!(parse_args(["-c", "0"]).unwrap_err().message(), "Maximum connections must be greater than 0");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The help text for the supported flags.
///
/// ```
/// assert!(evloop_memcache_engine::config::usage().contains("--port"));
/// ```
pub fn usage() -> &'static str {
    "\
-p, --port=<num>          TCP port to listen on (default: 11211)
-U, --udp-port=<num>      UDP port to listen on (default: 0, off)
-l, --listen=<addr>       interface to listen on (default: INADDR_ANY)
-u, --user=<user>         accepted for compatibility; ignored
-m, --memory-limit=<num>  item memory in megabytes (default: 64)
-c, --conn-limit=<num>    max simultaneous connections (default: 1024)
-v, --verbose             verbose (print errors/warnings while in event loop)
-vv                       very verbose (also print client commands/responses)
-A, --enable-shutdown     enable ascii \"shutdown\" command
-h, --help                print this help and exit
-V, --version             print version and exit
-t, --threads=<num>       number of threads to use (default: 4)
-R, --max-reqs-per-event  maximum number of requests per event, limits the
                          requests processed per connection to prevent
                          starvation (default: 20)
-I, --max-item-size=<num> adjusts max item size
                          (default: 1m, min: 1k, max: 1024m)
"
}

const LONG: &[(&str, char)] = &[
    ("port", 'p'),
    ("udp-port", 'U'),
    ("listen", 'l'),
    ("user", 'u'),
    ("memory-limit", 'm'),
    ("conn-limit", 'c'),
    ("verbose", 'v'),
    ("help", 'h'),
    ("enable-shutdown", 'A'),
    ("version", 'V'),
    ("threads", 't'),
    ("max-reqs-per-event", 'R'),
    ("max-item-size", 'I'),
];

fn takes_value(opt: char) -> bool {
    matches!(opt, 'p' | 'U' | 'l' | 'u' | 'm' | 'c' | 't' | 'R' | 'I')
}

/// Parses memcached's flags (without the program name), getopt-style: `-p 1`, `-p1`,
/// `--port=1`, `--port 1`, clustered `-vv`, and `--` to end the options.
///
/// ```
/// use evloop_memcache_engine::config::{parse_args, Command};
/// let Command::Run(c) = parse_args(["--port=11311", "-l", "127.0.0.1,::1", "-U", "0", "-u", "nobody"]).unwrap() else { panic!() };
/// assert_eq!(c.listen, ["127.0.0.1", "::1"]);
/// assert_eq!(c.user.as_deref(), Some("nobody"));
/// assert_eq!(parse_args(["-Z"]).unwrap_err().to_string(), "invalid option -- 'Z'");
/// ```
pub fn parse_args<I, S>(args: I) -> Result<Command, ConfigError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let args: Vec<String> = args.into_iter().map(|s| s.as_ref().to_owned()).collect();
    let mut c = Config::default();
    let mut help = false;
    let mut version = false;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            if i < args.len() {
                return Err(ConfigError::new(format!(
                    "unexpected argument '{}'",
                    args[i]
                )));
            }
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let Some(&(_, opt)) = LONG.iter().find(|(n, _)| *n == name) else {
                return Err(ConfigError::new(format!("unrecognized option '--{name}'")));
            };
            let value = if takes_value(opt) {
                match inline {
                    Some(v) => Some(v),
                    None if i < args.len() => {
                        i += 1;
                        Some(args[i - 1].clone())
                    }
                    None => {
                        return Err(ConfigError::new(format!(
                            "option '--{name}' requires an argument"
                        )))
                    }
                }
            } else if inline.is_some() {
                return Err(ConfigError::new(format!(
                    "option '--{name}' doesn't allow an argument"
                )));
            } else {
                None
            };
            apply(&mut c, opt, value.as_deref(), &mut help, &mut version)?;
            continue;
        }
        let Some(cluster) = arg.strip_prefix('-').filter(|s| !s.is_empty()) else {
            return Err(ConfigError::new(format!("unexpected argument '{arg}'")));
        };
        let chars: Vec<char> = cluster.chars().collect();
        let mut j = 0;
        while j < chars.len() {
            let opt = chars[j];
            j += 1;
            if !"pUlumcvhVtRIA".contains(opt) {
                return Err(ConfigError::new(format!("invalid option -- '{opt}'")));
            }
            if takes_value(opt) {
                let value = if j < chars.len() {
                    chars[j..].iter().collect::<String>()
                } else if i < args.len() {
                    i += 1;
                    args[i - 1].clone()
                } else {
                    return Err(ConfigError::new(format!(
                        "option requires an argument -- '{opt}'"
                    )));
                };
                apply(&mut c, opt, Some(&value), &mut help, &mut version)?;
                break;
            }
            apply(&mut c, opt, None, &mut help, &mut version)?;
        }
    }
    if help {
        return Ok(Command::Help);
    }
    if version {
        return Ok(Command::Version);
    }
    validate(&c)?;
    Ok(Command::Run(c))
}

fn apply(
    c: &mut Config,
    opt: char,
    value: Option<&str>,
    help: &mut bool,
    version: &mut bool,
) -> Result<(), ConfigError> {
    let v = value.unwrap_or("");
    match opt {
        'p' => c.port = port(v, "Invalid port number")?,
        'U' => c.udp_port = port(v, "Invalid UDP port number")?,
        'l' => c
            .listen
            .extend(v.split(',').filter(|s| !s.is_empty()).map(str::to_owned)),
        'u' => c.user = Some(v.to_owned()),
        'm' => c.memory_limit_mb = u64::try_from(atoi(v)).unwrap_or(0),
        'c' => {
            let n = atoi(v);
            if n <= 0 {
                return Err(ConfigError::new(
                    "Maximum connections must be greater than 0",
                ));
            }
            c.max_connections = n as u32;
        }
        't' => {
            let n = atoi(v);
            if n <= 0 {
                return Err(ConfigError::new("Number of threads must be greater than 0"));
            }
            c.threads = n as u32;
        }
        'R' => {
            let n = atoi(v);
            if n <= 0 {
                return Err(ConfigError::new(
                    "Number of requests per event must be greater than 0",
                ));
            }
            c.reqs_per_event = n as u32;
        }
        'I' => c.item_size_max = item_size(v),
        'v' => c.verbose += 1,
        'A' => c.enable_shutdown = true,
        'h' => *help = true,
        'V' => *version = true,
        _ => unreachable!("unknown options are refused before"),
    }
    Ok(())
}

fn port(v: &str, what: &str) -> Result<u16, ConfigError> {
    let n = atoi(v);
    u16::try_from(n).map_err(|_| ConfigError::new(format!("ERROR: {what} {n}.")))
}

/// memcached's `-I`: a `k`/`m` suffix multiplies, the rest is `atoi`.
fn item_size(v: &str) -> usize {
    let (digits, unit) = match v.chars().last() {
        Some(u @ ('k' | 'K' | 'm' | 'M')) => (&v[..v.len() - 1], Some(u)),
        _ => (v, None),
    };
    let n = atoi(digits);
    let n = match unit {
        Some('k' | 'K') => n * 1024,
        Some(_) => n * 1024 * 1024,
        None => n,
    };
    usize::try_from(n).unwrap_or(0)
}

/// The checks memcached makes after parsing, in its order.
fn validate(c: &Config) -> Result<(), ConfigError> {
    if c.item_size_max < ITEM_SIZE_MAX_LOWER_LIMIT {
        return Err(ConfigError::new(
            "Item max size cannot be less than 1024 bytes.",
        ));
    }
    if c.item_size_max as u64 > c.memory_limit_bytes() / 2 {
        return Err(ConfigError::new(
            "Cannot set item size limit higher than 1/2 of memory max.",
        ));
    }
    if c.item_size_max > ITEM_SIZE_MAX_UPPER_LIMIT {
        return Err(ConfigError::new(
            "Cannot set item size limit higher than a gigabyte.",
        ));
    }
    if SLAB_CHUNK_SIZE_MAX > c.item_size_max {
        return Err(ConfigError::new(format!(
            "slab_chunk_max (bytes: {SLAB_CHUNK_SIZE_MAX}) cannot be larger than -I (item_size_max {})",
            c.item_size_max
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Config {
        match parse_args(args) {
            Ok(Command::Run(c)) => c,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn err(args: &[&str]) -> String {
        parse_args(args).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        assert_eq!(run(&[]), Config::default());
    }

    #[test]
    fn forms() {
        assert_eq!(run(&["-p", "1"]).port, 1);
        assert_eq!(run(&["-p1"]).port, 1);
        assert_eq!(run(&["--port=1"]).port, 1);
        assert_eq!(run(&["--port", "1"]).port, 1);
        assert_eq!(run(&["-vvv"]).verbose, 3);
        assert_eq!(run(&["-v", "-v"]).verbose, 2);
        assert_eq!(run(&["-vt2"]).threads, 2);
        assert_eq!(run(&["-l", "a", "-l", "b,c"]).listen, ["a", "b", "c"]);
        assert_eq!(run(&["-R", "5"]).reqs_per_event, 5);
        assert_eq!(run(&["-u", "root"]).user.as_deref(), Some("root"));
    }

    #[test]
    fn like_memcached() {
        // Observed with memcached 1.6.18.
        assert_eq!(run(&["-m", "64m"]).memory_limit_mb, 64);
        assert_eq!(run(&["-m", "64k"]).memory_limit_mb, 64);
        assert_eq!(run(&["-t", "2x"]).threads, 2);
        assert_eq!(run(&["-p", "abc"]).port, 0);
        assert_eq!(run(&["-I", "2m"]).item_size_max, 2 << 20);
        assert_eq!(run(&["-I", "2M"]).item_size_max, 2 << 20);
        assert_eq!(run(&["-I", "512k"]).item_size_max, 512 << 10);
        assert_eq!(run(&["-m", "100", "-I", "50m"]).item_size_max, 50 << 20);
        assert_eq!(run(&["-m", "2048", "-I", "1024m"]).item_size_max, 1 << 30);
        assert_eq!(
            err(&["-t", "0"]),
            "Number of threads must be greater than 0"
        );
        assert_eq!(
            err(&["-t", "abc"]),
            "Number of threads must be greater than 0"
        );
        assert_eq!(
            err(&["-t", "-1"]),
            "Number of threads must be greater than 0"
        );
        assert_eq!(
            err(&["-c", "0"]),
            "Maximum connections must be greater than 0"
        );
        assert_eq!(
            err(&["-c", "-5"]),
            "Maximum connections must be greater than 0"
        );
        assert_eq!(err(&["-p", "70000"]), "ERROR: Invalid port number 70000.");
        assert_eq!(
            err(&["-I", "512"]),
            "Item max size cannot be less than 1024 bytes."
        );
        assert_eq!(
            err(&["-I", "1x"]),
            "Item max size cannot be less than 1024 bytes."
        );
        assert_eq!(
            err(&["-I", "1g"]),
            "Item max size cannot be less than 1024 bytes."
        );
        assert_eq!(
            err(&["-I", "33m"]),
            "Cannot set item size limit higher than 1/2 of memory max."
        );
        assert_eq!(
            err(&["-m", "0"]),
            "Cannot set item size limit higher than 1/2 of memory max."
        );
        assert_eq!(
            err(&["-m", "1"]),
            "Cannot set item size limit higher than 1/2 of memory max."
        );
        assert_eq!(
            err(&["-m", "4096", "-I", "1025m"]),
            "Cannot set item size limit higher than a gigabyte."
        );
        assert_eq!(
            err(&["-I", "100k"]),
            "slab_chunk_max (bytes: 524288) cannot be larger than -I (item_size_max 102400)"
        );
        assert_eq!(err(&["-Z9"]), "invalid option -- 'Z'");
        assert_eq!(err(&["-p"]), "option requires an argument -- 'p'");
        assert_eq!(err(&["--bogus"]), "unrecognized option '--bogus'");
        assert_eq!(err(&["stray"]), "unexpected argument 'stray'");
    }
}
