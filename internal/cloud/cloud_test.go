package cloud

import "testing"

func TestIsVaultHost(t *testing.T) {
	tests := []struct {
		cloud Cloud
		host  string
		want  bool
	}{
		{AzurePublic, "contoso.vault.azure.net", true},
		{AzurePublic, "CONTOSO.Vault.Azure.Net", true},
		{AzurePublic, "vault.azure.net", false},
		{AzurePublic, ".vault.azure.net", false},
		{AzurePublic, "a.b.vault.azure.net", false},
		{AzurePublic, "contoso.vault.azure.net.evil.example", false},
		{AzurePublic, "contoso.vault.usgovcloudapi.net", false},
		{AzureUSGovernment, "contoso.vault.usgovcloudapi.net", true},
		{AzureChina, "contoso.vault.azure.cn", true},
	}
	for _, tt := range tests {
		if got := tt.cloud.IsVaultHost(tt.host); got != tt.want {
			t.Errorf("%s.IsVaultHost(%q) = %v, want %v", tt.cloud.Name, tt.host, got, tt.want)
		}
	}
}

func TestByName(t *testing.T) {
	for _, c := range All {
		got, err := ByName(c.Name)
		if err != nil || got != c {
			t.Errorf("ByName(%q) = %v, %v", c.Name, got.Name, err)
		}
	}
	if _, err := ByName("Mars"); err == nil {
		t.Error("unknown cloud accepted")
	}
	if AzurePublic.GraphScope() != "https://graph.microsoft.com/.default" || AzurePublic.GraphHost() != "graph.microsoft.com" {
		t.Error("derived endpoints are wrong")
	}
}

func TestByInstance(t *testing.T) {
	for in, want := range map[string]string{
		"microsoftonline.com":        "AzurePublic",
		"MicrosoftOnline.US":         "AzureUSGovernment",
		"partner.microsoftonline.cn": "AzureChina",
	} {
		if c, ok := ByInstance(in); !ok || c.Name != want {
			t.Errorf("ByInstance(%q) = %s, %v; want %s", in, c.Name, ok, want)
		}
	}
	if _, ok := ByInstance("microsoftonline.de"); ok {
		t.Error("ByInstance(microsoftonline.de): a closed cloud")
	}
}
