import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, IsString, Matches, Max, MaxLength, Min } from 'class-validator';

/** Visibility paging: `pageToken` is the server's own next-page token (base64url). */
export class PageQueryDto {
  @ApiPropertyOptional({ minimum: 1, maximum: 1000, default: 100 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1000)
  pageSize: number = 100;

  @ApiPropertyOptional({ description: 'nextPageToken of the previous page' })
  @IsOptional()
  @IsString()
  @MaxLength(8192)
  @Matches(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, { message: 'pageToken must be a token returned by a previous page' })
  pageToken?: string;
}
