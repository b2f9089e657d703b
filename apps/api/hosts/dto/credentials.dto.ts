import { SshLoginDto } from './ssh-login.dto';

/** New bootstrap credentials for an onboarding waiting in `needs-credentials`. */
export class ProvideCredentialsDto extends SshLoginDto {}
