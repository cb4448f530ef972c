//! POST /mfa/totp/enroll, /mfa/totp/activate, DELETE /mfa/totp: its entry in `gantry::app::FUNCTIONS`.

fn main() -> std::process::ExitCode {
    gantry::runtime::start(&gantry::app::MFA_TOTP)
}
