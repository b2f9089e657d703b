import { inspect } from 'node:util';
import { ApiPropertyOptional, ApiProperty } from '@nestjs/swagger';
import { IsOptional, IsString, Length, Matches, MaxLength, ValidateIf } from 'class-validator';
import {
  ExactlyOneOf,
  IsSshPrivateKey,
  MAX_PRIVATE_KEY_LENGTH,
  NoControlChars,
  NoTemplateSyntax,
  OnlyWhen,
  USERNAME_PATTERN,
} from '../../common/validators';

export const MAX_SECRET_LENGTH = 1024;

/**
 * A login: user name and exactly one of password / private key (with an optional passphrase).
 * Holds secrets: it prints and serializes as `[redacted]` so a stray log line cannot leak them.
 */
export class SshLoginDto {
  @ApiProperty({ pattern: USERNAME_PATTERN.source, example: 'admin' })
  @IsString()
  @NoTemplateSyntax()
  @Matches(USERNAME_PATTERN, { message: 'username must be a POSIX user name ($constraint1)' })
  username!: string;

  @ApiPropertyOptional({ description: 'Exactly one of password or privateKey.', maxLength: MAX_SECRET_LENGTH, writeOnly: true })
  @ValidateIf((o: SshLoginDto) => o.password !== undefined || o.privateKey === undefined)
  @ExactlyOneOf('password', 'privateKey')
  @IsString()
  @Length(1, MAX_SECRET_LENGTH)
  @NoControlChars()
  password?: string;

  @ApiPropertyOptional({
    description: 'PEM or OpenSSH private key; checked with ssh2.utils.parseKey (with passphrase if given).',
    maxLength: MAX_PRIVATE_KEY_LENGTH,
    writeOnly: true,
  })
  @ValidateIf((o: SshLoginDto) => o.privateKey !== undefined)
  @IsString()
  @MaxLength(MAX_PRIVATE_KEY_LENGTH)
  @NoControlChars({ allowNewlines: true })
  @IsSshPrivateKey('passphrase')
  privateKey?: string;

  @ApiPropertyOptional({ description: 'Passphrase of privateKey.', maxLength: MAX_SECRET_LENGTH, writeOnly: true })
  @IsOptional()
  @IsString()
  @Length(1, MAX_SECRET_LENGTH)
  @NoControlChars()
  @OnlyWhen((o) => o.privateKey !== undefined, 'is only valid with privateKey')
  passphrase?: string;

  toJSON(): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return `${this.constructor.name} [redacted]`;
  }
}
