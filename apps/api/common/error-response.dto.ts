import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ErrorCode } from './error-codes';

export class FieldErrorDto {
  @ApiProperty({ example: 'bastion.privateKey' }) field!: string;
  @ApiProperty({ type: 'object', additionalProperties: { type: 'string' }, example: { isSshPrivateKey: 'privateKey must be a PEM or OpenSSH private key' } })
  constraints!: Record<string, string>;
}

export class ErrorResponseDto {
  @ApiProperty({ example: 400 }) statusCode!: number;
  @ApiProperty({ enum: Object.values(ErrorCode), example: ErrorCode.ValidationFailed }) code!: string;
  @ApiProperty() message!: string;
  @ApiPropertyOptional({ type: [FieldErrorDto] }) errors?: FieldErrorDto[];
}
