using System.Text.Json.Nodes;
using Connect.Api.Http;
using Connect.Core.Model;

namespace Connect.Api.Content;

public static class BundleJson
{
    public static JsonObject From(BundleInfo b, long? activeBundleId) => new()
    {
        ["id"] = ApiJson.Id(b.Id),
        ["content_guid"] = b.ContentGuid.ToString("D"),
        ["created_time"] = ApiJson.Time(b.CreatedTime),
        ["created_by"] = b.CreatedBy?.ToString("D"),
        ["cluster_name"] = null,
        ["image_name"] = null,
        ["r_version"] = null,
        ["r_environment_management"] = null,
        ["py_version"] = b.PyVersion,
        ["py_environment_management"] = b.PyVersion is null ? null : true,
        ["quarto_version"] = null,
        ["active"] = b.Id == activeBundleId,
        ["size"] = b.Size,
        ["metadata"] = new JsonObject
        {
            ["source"] = b.Source.Source,
            ["source_repo"] = b.Source.SourceRepo,
            ["source_branch"] = b.Source.SourceBranch,
            ["source_commit"] = b.Source.SourceCommit,
            ["archive_md5"] = b.Md5,
            ["archive_sha1"] = b.Sha1,
        },
    };
}
