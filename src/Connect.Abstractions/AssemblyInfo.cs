using Connect.Core.Model;

// The catalog records live in Connect.Core (BCL only); their serializers are generated here.
[assembly: GenerateCodeForDeclaringAssembly(typeof(ContentItem))]
