//! POST /login/mfa: its entry in `gantry::app::FUNCTIONS`; the rules live in the area.

fn main() -> std::process::ExitCode {
    gantry::runtime::start(&gantry::app::LOGIN_MFA)
}
